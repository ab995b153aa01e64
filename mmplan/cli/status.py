"""`mmplan status`: each flow's state, latency, lag, checkpoints and RPO verdict, live; exit 1 when one is down."""

from __future__ import annotations

import json

import click

from mmplan.cli.options import FILE, FLOWS, TIMEOUT
from mmplan.errors import MmplanError
from mmplan.graph.compile import CompiledFlow, compile_topology
from mmplan.ops.read import Live
from mmplan.ops.run import status_of
from mmplan.ops.status import FlowStatus, connect_status, lag_from, render_text
from mmplan.topology.loader import load_topology
from mmplan.topology.models import Engine


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
        statuses = [connect_status_of(live, flow) if flow.settings.engine is Engine.connect
                    else status_of(live, flow) for flow in chosen]
    if fmt == "json":
        doc = {"healthy": all(s.healthy for s in statuses), "flows": [s.doc() for s in statuses]}
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(render_text(statuses), nl=False)
    return 0 if all(s.healthy for s in statuses) else 1


def connect_status_of(live: Live, flow: CompiledFlow) -> FlowStatus:
    """An `engine: connect` flow: heartbeats and checkpoints as for any flow, the state from its connectors on the
    Connect cluster, the lag from the source connector's offsets against the source's end offsets."""
    base = status_of(live, flow)
    facts = live.connect_facts(flow)
    lag, note = None, "the Connect cluster did not answer"
    if facts.unreachable is None:
        positions, note = live.connect_offsets(flow)
        if positions is not None:
            try:
                lag = lag_from(live.end_offsets(flow.source, live.replicated_topics(flow)), positions)
            except MmplanError as e:
                lag, note = None, f"the source {flow.source} cannot be read: {e.message}"
    limit = 3 * int(flow.settings.heartbeats.interval * 1000) if flow.settings.heartbeats.enabled else None
    return connect_status(base, facts, limit, lag, note)
