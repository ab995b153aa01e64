"""The live workflow behind `plan` and `apply`: check offline, read the clusters once, diff, apply.

This is the one place that strings the stages together; the CLI and the daemon both call it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mmplan.apply.execute import Outcome, apply_changes
from mmplan.errors import MmplanError
from mmplan.graph.checks import check_topology
from mmplan.graph.compile import CompiledFlow, CompiledTopology, compile_topology
from mmplan.kafka.admin import Admin
from mmplan.kafka.connect import ConnectClient
from mmplan.mm2.connectors import topology_connectors
from mmplan.plan.diff import compute_plan
from mmplan.plan.model import Change, Plan, PlanProblem
from mmplan.plan.saved import SavedPlan
from mmplan.plan.summary import describe
from mmplan.state.live import ConnectSnapshot, read_connect, read_snapshot
from mmplan.state.snapshot import Snapshot
from mmplan.topology.findings import has_errors
from mmplan.topology.loader import LoadedTopology
from mmplan.topology.models import Engine, Topology


@dataclass(frozen=True)
class LivePlan:
    plan: Plan
    snapshot: Snapshot
    compiled: CompiledTopology
    connect: ConnectSnapshot | None = None

    def fingerprints(self) -> dict[str, str]:
        """The live state's hashes: one per cluster alias, one per Connect URL."""
        return {**self.snapshot.fingerprints(), **(self.connect.fingerprints() if self.connect else {})}


def plan_topology(loaded: LoadedTopology, flow_names: tuple[str, ...] = (), allow_delete: bool = False,
                  timeout: float = 10.0) -> LivePlan:
    """Check the topology offline; if it is sound, read the clusters its flows touch and diff."""
    findings = check_topology(loaded)
    compiled = compile_topology(loaded.topology)
    flows = compiled.select(flow_names)
    if has_errors(findings):
        problems = [PlanProblem(code=f.code, severity=f.severity,
                                message=f"{loaded.file}:{f.line}: {f.message}" if f.line else f.message)
                    for f in findings]
        return LivePlan(Plan(topology_file=loaded.file, problems=problems), Snapshot(), compiled)
    snapshot = read_snapshot(loaded.topology, _aliases(flows), timeout=timeout)
    connect = read_connect(flows, timeout=timeout) if _connect_flows(flows) else None
    plan = compute_plan(compiled, flows, snapshot, findings, allow_delete=allow_delete, topology_file=loaded.file,
                        connect=connect)
    return LivePlan(plan, snapshot, compiled, connect)


def _connect_flows(flows: list[CompiledFlow]) -> list[CompiledFlow]:
    return [f for f in flows if f.settings.engine is Engine.connect and f.settings.connect.urls]


def _aliases(flows: list[CompiledFlow]) -> list[str]:
    return list(dict.fromkeys(a for f in flows if f.settings.enabled for a in (f.source, f.target)))


def apply_plan(plan: Plan, topology: Topology, timeout: float = 10.0,
               report: Callable[[Outcome], None] = lambda outcome: None) -> list[Outcome]:
    """Connect to the clusters the plan changes and apply it."""
    if plan.has_errors:
        raise MmplanError("the plan has errors; nothing was applied", hint="fix the problems the plan lists")
    admins: dict[str, Admin] = {}
    connector_changes = [c for c in plan.pending if c.connector is not None]
    clients, configs = _connect_clients(topology, connector_changes, timeout) if connector_changes else ({}, {})
    try:
        for alias in dict.fromkeys(c.cluster for c in plan.pending if c.connector is None):
            admins[alias] = Admin.connect(alias, topology.clusters[alias], timeout=timeout)
        return apply_changes(plan, admins, report, connect=clients, connector_configs=configs)
    finally:
        for admin in admins.values():
            admin.close()


def _connect_clients(topology: Topology, changes: list[Change],
                     timeout: float) -> tuple[dict[str, ConnectClient], dict[str, dict[str, str]]]:
    """A REST client per Connect URL the changes touch, and every connector config the topology wants."""
    flows = _connect_flows(list(compile_topology(topology).flows))
    clients = {}
    for url in dict.fromkeys(c.cluster for c in changes):
        settings = next((f.settings.connect for f in flows if f.settings.connect.urls[0] == url), None)
        if settings is None:
            raise MmplanError(f"no connect flow of the topology uses Kafka Connect {url}")
        clients[url] = ConnectClient.for_settings(settings, timeout)
    return clients, topology_connectors(topology, flows)


def verify_saved(saved: SavedPlan, file: str, timeout: float = 10.0) -> None:
    """Refuse a saved plan whose live state has changed since it was made, saying what changed."""
    aliases = [key for key in saved.fingerprints if key in saved.topology.clusters]
    snapshot = read_snapshot(saved.topology, aliases, timeout=timeout)
    compiled = compile_topology(saved.topology)
    flows = compiled.select(tuple(saved.plan.flows))
    connect = read_connect(flows, timeout=timeout) if _connect_flows(flows) else None
    now = {**snapshot.fingerprints(), **(connect.fingerprints() if connect else {})}
    changed = [key for key, fp in saved.fingerprints.items() if now.get(key) != fp]
    if not changed:
        return
    fresh = compute_plan(compiled, flows, snapshot, connect=connect, allow_delete=any(
        c.held is False and c.action.value == "delete" for c in saved.plan.changes))
    old = {describe(c) for c in saved.plan.pending}
    new = {describe(c) for c in fresh.pending}
    lines = [f"  no longer needed: {d}" for d in sorted(old - new)]
    lines += [f"  now also needed: {d}" for d in sorted(new - old)]
    detail = "\n".join(lines[:10]) if lines else "  (the changes are the same, but other live state differs)"
    raise MmplanError(f"the live state of {', '.join(changed)} changed since this plan was made:\n{detail}",
                      where=file, hint="make a new plan with `mmplan plan --out FILE` and review it")
