"""`mmplan validate`, `mmplan graph`, `mmplan schema`: the offline commands."""

from __future__ import annotations

import click

from mmplan.cli.options import FILE
from mmplan.graph.checks import check_topology
from mmplan.graph.compile import compile_topology
from mmplan.graph.render import RENDERERS
from mmplan.plan.render_json import plan_schema
from mmplan.topology import findings as report
from mmplan.topology.findings import has_errors
from mmplan.topology.loader import TopologyError, load_topology
from mmplan.topology.schema import schema_text


@click.command()
@FILE
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text", show_default=True)
def validate(file: str, fmt: str) -> int:
    """Check a topology offline: schema, cycles, replication factors, RPO and more.

    Exits 0 when there are no errors, 1 when there are.
    """
    try:
        loaded = load_topology(file)
        findings = check_topology(loaded)
        t = loaded.topology
        summary = f"{report.count(len(t.clusters), 'cluster')}, {report.count(len(t.flows), 'flow')}"
    except TopologyError as e:
        if fmt == "text":
            raise
        findings, summary = e.findings, ""
    if fmt == "json":
        click.echo(report.render_json(findings, file))
    elif fmt == "github":
        output = report.render_github(findings, file)
        if output:
            click.echo(output)
    else:
        click.echo(report.render_text(findings, file, summary))
    return 1 if has_errors(findings) else 0


@click.command()
@FILE
@click.option("--format", "fmt", type=click.Choice(sorted(RENDERERS)), default="mermaid", show_default=True)
def graph(file: str, fmt: str) -> int:
    """Draw the cluster graph: each flow with its policy and what it replicates."""
    compiled = compile_topology(load_topology(file).topology)
    click.echo(RENDERERS[fmt](compiled), nl=False)
    return 0


@click.command()
@click.argument("document", type=click.Choice(["topology", "plan"]), default="topology")
def schema(document: str) -> int:
    """Print the JSON Schema of the topology file or of the plan document (schemas/*.v1.json)."""
    click.echo(schema_text(plan_schema() if document == "plan" else None), nl=False)
    return 0
