"""`mmplan offsets translate`: where a consumer group resumes on a flow's target, per partition."""

from __future__ import annotations

import json

import click

from mmplan.cli.options import FILE, TIMEOUT
from mmplan.errors import MmplanError
from mmplan.graph.compile import CompiledFlow, compile_topology
from mmplan.ops.read import Live
from mmplan.ops.run import translate as translate_group
from mmplan.topology.loader import load_topology
from mmplan.topology.models import Topology

FLOW = click.option("--flow", "flow_name", required=True, metavar="SOURCE->TARGET",
                    help="The flow (`a:b` works too).")
GROUP = click.option("--group", required=True, help="The consumer group.")


def one_flow(file: str, name: str) -> tuple[Topology, CompiledFlow]:
    topology = load_topology(file).topology
    [flow] = compile_topology(topology).select([name])
    if flow.source not in topology.clusters or flow.target not in topology.clusters:
        raise MmplanError(f"flow {flow.name} names an undeclared cluster", where=file)
    return topology, flow


@click.group()
def offsets() -> None:
    """Consumer group offsets across a flow."""


@offsets.command()
@FILE
@FLOW
@GROUP
@click.option("--fresh", is_flag=True,
              help="Also translate the group's committed source offsets through the offset syncs where they are "
                   "newer than its checkpoints.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@TIMEOUT
def translate(file: str, flow_name: str, group: str, fresh: bool, fmt: str, timeout: float) -> int:
    """Where a consumer group resumes on the flow's target.

    Per partition, the target topic, partition and offset GROUP should resume from on the flow's target:
    from the checkpoints, as RemoteClusterUtils.translateOffsets answers (--fresh: and the offset syncs).
    Exits 1 when nothing translates."""
    topology, flow = one_flow(file, flow_name)
    with Live(topology, timeout) as live:
        t = translate_group(live, flow, group, fresh=fresh)
    if fmt == "json":
        click.echo(json.dumps(t.doc(), indent=2))
    else:
        click.echo(f"Group {group} on {flow.target} ({flow.name}, from {t.mode}):")
        rows = [r.doc(t.now_ms) for _, r in sorted(t.resumes.items())]
        if rows:
            w = max(len(r["topic"]) for r in rows)
            click.echo(f"  {'topic':<{w}}  {'partition':>9}  {'offset':>10}  source offset  from")
            for r in rows:
                age = r["checkpoint_age_ms"]
                origin = r["from"] + ("" if age is None else f", {age / 1000:.1f}s old")
                origin += ", exact" if r["exact"] else ""
                click.echo(f"  {r['topic']:<{w}}  {r['partition']:>9}  {r['offset']:>10}  "
                           f"{r['source_topic']}@{r['source_offset']}  ({origin})")
        for note in t.notes:
            click.echo(f"  note: {note}")
        if not rows:
            click.echo(f"  nothing: no checkpoint of group {group} in {flow.policy.checkpoints_topic()}"
                       + (" and no offset sync for its source offsets" if fresh else ""))
    return 0 if t.resumes else 1
