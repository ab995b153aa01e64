"""`mmplan export`: a topology as an mm2.properties or as Kafka Connect connector configs."""

from __future__ import annotations

import json

import click

from mmplan.cli.options import FILE
from mmplan.graph.compile import compile_topology
from mmplan.mm2.connectors import topology_connectors
from mmplan.mm2.export import export_properties
from mmplan.topology.loader import load_topology


@click.command()
@FILE
@click.option("--format", "fmt", type=click.Choice(["mm2-properties", "connect-json"]), default="mm2-properties",
              show_default=True)
def export(file: str, fmt: str) -> int:
    """Print the topology as an mm2.properties (MirrorMaker 2 dedicated mode) or as the connector configs
    of every enabled flow (a JSON list of {name, config} for the Connect REST API)."""
    topology = load_topology(file).topology
    if fmt == "connect-json":
        compiled = compile_topology(topology)
        connectors = topology_connectors(topology, list(compiled.flows))
        click.echo(json.dumps([{"name": n, "config": c} for n, c in connectors.items()], indent=2))
        return 0
    exported = export_properties(topology, file)
    click.echo(exported.text, nl=False)
    for note in exported.notes:
        click.echo(f"note: {note}: no MirrorMaker 2 setting; kept in the `# mmplan:` block", err=True)
    return 0
