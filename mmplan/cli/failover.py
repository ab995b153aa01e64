"""`mmplan failover` and `mmplan failback`: move a consumer group across a flow and say what the application
must change."""

from __future__ import annotations

import json

import click

from mmplan.cli.offsets import FLOW, GROUP, one_flow
from mmplan.cli.options import FILE, TIMEOUT
from mmplan.ops import failover as fo
from mmplan.ops import run as ops
from mmplan.ops.read import Live

DRY_RUN = click.option("--dry-run", is_flag=True, help="Show what would be committed; commit nothing.")
REWIND = click.option("--allow-rewind", is_flag=True,
                      help="Also move partitions where the group is already ahead back to the translated offset.")
FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)


def _show(result: ops.GroupMove, fmt: str, dry_run: bool) -> int:
    if fmt == "json":
        click.echo(json.dumps({"dry_run": dry_run, **result.doc()}, indent=2))
    else:
        click.echo(fo.render_text(result.title, result.moves, result.changes, result.notes, result.done,
                                  result.refused), nl=False)
        for where, error in result.errors.items():
            click.echo(f"error: {where}: {error}", err=True)
        if result.refused:
            click.echo(f"error: refused: {result.refused}", err=True)
    return 1 if result.refused or result.errors else 0


@click.command()
@FILE
@FLOW
@GROUP
@DRY_RUN
@REWIND
@click.option("--force", is_flag=True, help="Move the group even when its checkpoints are older than the rpo.")
@FORMAT
@TIMEOUT
def failover(file: str, flow_name: str, group: str, dry_run: bool, allow_rewind: bool, force: bool, fmt: str,
             timeout: float) -> int:
    """Move a consumer group to the flow's target.

    Checks GROUP has no active members there, commits its freshest exact
    translated offsets (checkpoints, and offset syncs where the source still answers), never moving a
    partition backwards unless --allow-rewind, and print what the application must change. Refuses (exit 1)
    when there is nothing to translate or the checkpoints are older than the flow's rpo."""
    topology, flow = one_flow(file, flow_name)
    with Live(topology, timeout) as live:
        result = ops.failover(live, flow, group, dry_run=dry_run, allow_rewind=allow_rewind, force=force)
    return _show(result, fmt, dry_run)


@click.command()
@FILE
@FLOW
@GROUP
@DRY_RUN
@REWIND
@FORMAT
@TIMEOUT
def failback(file: str, flow_name: str, group: str, dry_run: bool, allow_rewind: bool, fmt: str,
             timeout: float) -> int:
    """Move a consumer group back to the flow's source (the return trip).

    After a failover over --flow A->B: GROUP's offsets on B for the topics A->B replicated
    (`A.orders`) translated back through the flow's offset syncs and committed on A for the original topics
    (`orders`). Topics local to B travel back with a flow B->A and `mmplan failover --flow B->A`."""
    topology, flow = one_flow(file, flow_name)
    with Live(topology, timeout) as live:
        result = ops.failback(live, flow, group, dry_run=dry_run, allow_rewind=allow_rewind)
    return _show(result, fmt, dry_run)
