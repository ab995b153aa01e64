"""`mmplan drill`: a DR drill on one flow with marker records and a probe consumer group."""

from __future__ import annotations

import json

import click

from mmplan.cli.offsets import FLOW
from mmplan.cli.options import FILE
from mmplan.graph.compile import compile_topology
from mmplan.ops.drill import DEFAULT_TOPIC, render_text, run_drill
from mmplan.topology.loader import load_topology


@click.command()
@FILE
@FLOW
@click.option("--topic", default=DEFAULT_TOPIC, show_default=True,
              help="The drill topic on the source; the flow must replicate it (created when missing).")
@click.option("--records", type=click.IntRange(min=2), default=20, show_default=True, help="Marker records.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1),
              help="Seconds the whole drill may wait for replication and checkpoints (default: the flow's "
                   "refresh_topics interval + twice its checkpoints interval + 30s).")
def drill(file: str, flow_name: str, topic: str, records: int, fmt: str, timeout: float | None) -> int:
    """Run a DR drill on one flow.

    Without touching real traffic: produce marker records on the source, let a
    probe group consume half and commit, wait for replication and a checkpoint, fail the probe group over to
    the target (as `mmplan failover` does) and read there. Reports replication latency, checkpoint lag,
    records re-read and missed. Exits 1 when a record is missed, the rpo is exceeded, or the flow is not up."""
    loaded = load_topology(file)
    [flow] = compile_topology(loaded.topology).select([flow_name])
    result = run_drill(loaded, flow, topic=topic, records=records, timeout=timeout,
                       cluster_timeout=min(10.0, timeout or 10.0))
    if fmt == "json":
        click.echo(json.dumps(result.doc(), indent=2))
    else:
        click.echo(render_text(result), nl=False)
    return 0 if result.passed else 1
