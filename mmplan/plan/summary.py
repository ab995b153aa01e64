"""Shared wording for the plan renderers: symbols, one-line change descriptions, grouping, totals."""

from __future__ import annotations

from collections.abc import Iterator

from mmplan.plan.model import Action, Change, ChangeKind, Plan, PlanProblem

SYMBOL = {Action.create: "+", Action.update: "~", Action.delete: "-"}
NO_FLOW = "(other)"


def describe(change: Change) -> str:
    """One line: what changes, with before → after."""
    k = change.kind
    if k is ChangeKind.create_topic:
        a = change.after
        configs = ", ".join(f"{key}={value}" for key, value in a["configs"].items())
        return (f"topic {change.topic} ({_n(a['partitions'], 'partition')}, replication factor "
                f"{a['replication_factor']}{', ' + configs if configs else ''})")
    if k is ChangeKind.add_partitions:
        return f"topic {change.topic}: partitions {change.before} → {change.after}"
    if k is ChangeKind.set_config:
        before = "(unset)" if change.before is None else change.before
        return f"topic {change.topic}: {change.config} {before} → {change.after}"
    if k is ChangeKind.unset_config:
        return f"topic {change.topic}: {change.config} {change.before} → (unset)"
    if k is ChangeKind.delete_topic:
        return f"topic {change.topic} ({_n(change.before['partitions'], 'partition')})"
    if k is ChangeKind.create_connector:
        return f"connector {change.connector} ({_n(len(change.after), 'setting')})"
    if k is ChangeKind.update_connector:
        before, after = change.before or {}, change.after or {}
        keys = sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
        return f"connector {change.connector}: " + "; ".join(
            f"{key} {_shown(before.get(key))} → {_shown(after.get(key))}" for key in keys)
    return change.resource


def _shown(value: object) -> str:
    return "(unset)" if value is None else repr(value) if value == "" else str(value)


def by_flow(plan: Plan) -> Iterator[tuple[str, list[tuple[str, list[Change]]]]]:
    """Changes grouped by flow, then by cluster, in a stable order."""
    flows: dict[str, dict[str, list[Change]]] = {}
    for change in plan.changes:
        flows.setdefault(change.flow or NO_FLOW, {}).setdefault(change.cluster, []).append(change)
    for flow in sorted(flows, key=lambda f: (f == NO_FLOW, f)):
        clusters = flows[flow]
        yield flow, [(c, clusters[c]) for c in sorted(clusters)]


def totals(plan: Plan) -> str:
    """`Plan: N to create, M to change, K to delete.` plus held deletes."""
    c = plan.counts()
    line = f"Plan: {c[Action.create]} to create, {c[Action.update]} to change, {c[Action.delete]} to delete."
    held = len(plan.changes) - len(plan.pending)
    if held:
        line += f" {_n(held, 'delete')} held back (run apply with --allow-delete to make them)."
    return line


def problem_line(problem: PlanProblem) -> str:
    return f"{problem.severity}[{problem.code}]: {problem.message}"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")
