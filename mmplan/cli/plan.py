"""`mmplan plan` and `mmplan apply`."""

from __future__ import annotations

import sys

import click

from mmplan.apply.execute import Outcome
from mmplan.apply.workflow import apply_plan, plan_topology, verify_saved
from mmplan.cli.options import FILE, FLOWS, TIMEOUT, use_color
from mmplan.errors import MmplanError
from mmplan.graph.render import render_mermaid
from mmplan.plan.render_json import render_json
from mmplan.plan.render_markdown import render_markdown
from mmplan.plan.render_text import render_text
from mmplan.plan.saved import load_plan, save_plan
from mmplan.plan.summary import SYMBOL, describe
from mmplan.topology.loader import DEFAULT_FILE, load_topology

ALLOW_DELETE = click.option("--allow-delete", is_flag=True, help="Delete orphaned remote topics and ACLs.")


@click.command()
@FILE
@FLOWS
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for `mmplan apply --plan FILE`.")
@ALLOW_DELETE
@TIMEOUT
def plan(file: str, flows: tuple[str, ...], fmt: str, out: str | None, allow_delete: bool, timeout: float) -> int:
    """Show what apply would change. Exits 0 with no changes, 2 with changes, 1 on errors."""
    loaded = load_topology(file)
    live = plan_topology(loaded, flows, allow_delete=allow_delete, timeout=timeout)
    if fmt == "json":
        click.echo(render_json(live.plan), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(live.plan, render_mermaid(live.compiled)))
    else:
        click.echo(render_text(live.plan, color=use_color()), nl=False)
    if out:
        save_plan(out, live.plan, live.fingerprints(), loaded.topology)
        click.echo(f"Saved the plan to {out}: apply exactly this plan with `mmplan apply --plan {out}`.", err=True)
    return live.plan.exit_code()


@click.command()
@click.argument("file", required=False)
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), help="Apply this saved plan, exactly.")
@FLOWS
@ALLOW_DELETE
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@TIMEOUT
def apply(file: str | None, plan_file: str | None, flows: tuple[str, ...], allow_delete: bool, auto_approve: bool,
          timeout: float) -> int:
    """Make the clusters match the topology (or a saved plan). Exits 0 on success, 1 on any failure."""
    if plan_file:
        if file or flows or allow_delete:
            raise MmplanError("--plan applies exactly the saved plan: give no FILE, --flow or --allow-delete",
                              hint="make the plan with those options instead")
        saved = load_plan(plan_file)
        verify_saved(saved, plan_file, timeout=timeout)
        the_plan, topology = saved.plan, saved.topology
    else:
        loaded = load_topology(file or DEFAULT_FILE)
        the_plan, topology = plan_topology(loaded, flows, allow_delete, timeout).plan, loaded.topology
    click.echo(render_text(the_plan, color=use_color()), nl=False)
    if the_plan.has_errors:
        return 1
    if not the_plan.pending:
        return 0
    if not auto_approve:
        if not sys.stdin.isatty():
            raise MmplanError("apply asks for confirmation, but there is no terminal to ask on",
                              hint="pass --auto-approve, or apply a reviewed plan with --plan FILE --auto-approve")
        click.confirm(f"Apply these {len(the_plan.pending)} changes?", abort=True)
    outcomes = apply_plan(the_plan, topology, timeout=timeout, report=_report)
    failed = [o for o in outcomes if not o.ok]
    click.echo(f"Applied {len(outcomes) - len(failed)} of {len(outcomes)} changes"
               + (f"; {len(failed)} failed or skipped: run `mmplan plan` to see what is still missing." if failed
                  else "."))
    return 1 if failed else 0


def _report(outcome: Outcome) -> None:
    change = outcome.change
    mark = "ok  " if outcome.ok else ("skip" if outcome.skipped else "FAIL")
    line = f"  {mark} {SYMBOL[change.action]} {change.cluster}: {describe(change)}"
    if outcome.error:
        line += f": {outcome.error}"
    click.echo(line)
