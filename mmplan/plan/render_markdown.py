"""The plan as a pull-request comment: a summary line, a collapsible section per flow, the graph."""

from __future__ import annotations

from mmplan.plan.model import Plan
from mmplan.plan.summary import SYMBOL, by_flow, describe, problem_line, totals

MARKER = "<!-- mmplan-plan -->"  # lets the GitHub Action find and update its own comment


def render_markdown(plan: Plan, mermaid: str | None = None) -> str:
    head = (totals(plan) if plan.changes else "errors stop the plan" if plan.has_errors
            else "No changes. The clusters match the topology.")
    icon = "❌" if plan.has_errors else ("📝" if plan.pending else "✅")
    out = [MARKER, f"### {icon} mmplan: {head}", ""]
    for flow, clusters in by_flow(plan):
        changes = [c for _, cs in clusters for c in cs]
        out += [f"<details><summary><b>{flow}</b>: {len(changes)} change(s)</summary>", "",
                "| | cluster | change | why |", "|---|---|---|---|"]
        for cluster, cs in clusters:
            for c in cs:
                held = " *(held: needs `--allow-delete`)*" if c.held else ""
                change = _cell(describe(c)) + held
                out.append(f"| `{SYMBOL[c.action]}` | {cluster} | {change} | {_cell(c.reason or '')} |")
        out += ["", "</details>", ""]
    if plan.problems:
        out += ["**Problems**", ""]
        out += [f"- {'❌' if p.severity == 'error' else '⚠️'} {_cell(problem_line(p))}" for p in plan.problems]
        out.append("")
    if mermaid:
        out += ["<details><summary>Topology</summary>", "", "```mermaid", mermaid.rstrip(), "```", "", "</details>", ""]
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
