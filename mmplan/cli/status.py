"""`mmplan status`: each flow's state, latency, lag, checkpoints and RPO verdict, live; exit 1 when one is down."""

from __future__ import annotations

import json

import click

from mmplan.cli.options import FILE, FLOWS, TIMEOUT
from mmplan.errors import MmplanError
from mmplan.graph.compile import compile_topology
from mmplan.ops.read import Live
from mmplan.ops.run import status_of
from mmplan.ops.status import render_text
from mmplan.topology.loader import load_topology


@click.command()
@FILE
@FLOWS
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@TIMEOUT
def status(file: str, flows: tuple[str, ...], fmt: str, timeout: float) -> int:
    """Show each enabled flow's health and RPO verdict.

    Read from Kafka only: state (daemon status records and heartbeats),
    replication latency, lag per topic, checkpoint age per group and the verdict against the flow's rpo.
    Exits 1 when any flow is down or over its rpo, so it serves as a monitoring check."""
    topology = load_topology(file).topology
    compiled = compile_topology(topology)
    chosen = [f for f in compiled.select(flows) if f.settings.enabled]
    if not chosen:
        raise MmplanError("no enabled flow", where=file)
    with Live(topology, timeout) as live:
        statuses = [status_of(live, flow) for flow in chosen]
    if fmt == "json":
        doc = {"healthy": all(s.healthy for s in statuses), "flows": [s.doc() for s in statuses]}
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(render_text(statuses), nl=False)
    return 0 if all(s.healthy for s in statuses) else 1
