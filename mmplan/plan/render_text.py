"""The plan for a terminal, terraform style: +, ~, -, ! and a closing count."""

from __future__ import annotations

import click

from mmplan.plan.model import Action, Plan
from mmplan.plan.summary import SYMBOL, by_flow, describe, problem_line, totals

_COLOUR = {Action.create: "green", Action.update: "yellow", Action.delete: "red"}


def render_text(plan: Plan, color: bool = False) -> str:
    def paint(text: str, colour: str, bold: bool = False) -> str:
        return click.style(text, fg=colour, bold=bold) if color else text

    lines: list[str] = []
    for flow, clusters in by_flow(plan):
        lines.append(paint(f"Flow {flow}", "white", bold=True))
        for cluster, changes in clusters:
            lines.append(f"  on {cluster}:")
            for change in changes:
                symbol = SYMBOL[change.action]
                held = " (held: needs --allow-delete)" if change.held else ""
                reason = f"  # {change.reason}" if change.reason else ""
                lines.append("    " + paint(f"{symbol} {describe(change)}{held}", _COLOUR[change.action]) + reason)
        lines.append("")
    if plan.problems:
        lines.append(paint("Problems", "white", bold=True))
        for problem in plan.problems:
            colour = "red" if problem.severity == "error" else "yellow"
            lines.append("  " + paint(f"! {problem_line(problem)}", colour))
        lines.append("")
    if plan.has_errors:
        lines.append(paint("The plan has errors: fix them before applying.", "red"))
    elif not plan.changes:
        lines.append("No changes. The clusters match the topology.")
    if plan.changes:
        lines.append(paint(totals(plan), "white", bold=True))
    return "\n".join(lines) + "\n"
