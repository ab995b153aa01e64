"""The daemon: every selected flow of a topology, a reconcile on a timer and on SIGHUP, a bounded stop.

A reconcile re-reads the topology file, plans with `plan_topology` and applies the safe part of the plan with
`apply_plan` (the very code `mmplan plan` and `mmplan apply` run; nothing here plans or applies by itself).
Safe means: no delete unless its flow sets `allow_delete` (held deletes are logged once), and topic-config and
ACL changes only when that flow's `sync_topic_configs` / `sync_topic_acls` interval is due. Topic creations
and partition increases are applied at every reconcile. Then each flow's `FlowRunner` is told which source
topics to replicate: those the flow replicates whose remote topic exists on the target, as read by the plan's
snapshot or created by this reconcile's apply. The clusters are read once per reconcile.

Beside each flow's runner the daemon runs that flow's side work (`mmplan.daemon.sidework`): heartbeats,
checkpoints and group offset sync, and its status records. It starts with the runner, is told to stop with it,
and after the runner has drained writes the `stopped` status record, within the same stop bound.

GitOps: the topology comes from a file (reloaded when it changes) or from git (`GitSource`: fetched at every
reconcile; the commit is what runs). A topology that is invalid, or a cluster that cannot be read, leaves the last
good topology running; the reason is logged, exported and shown in /healthz. With several daemons on one topology,
only the holder of the applier lease (`Lease`: Kafka's group protocol on a one-partition topic) applies; the
others plan, replicate and report what they leave to it. Each reconcile that applied something logs the plan it
applied (the JSON document of `plan --format json`); the metrics show the version running, the last successful
reconcile, the changes applied and the changes left pending (held deletes, deferred syncs, left to the applier).

The pure parts (`safe_changes`, `replicated_topics`, `reconcile_interval`, `pending_changes`) take plain data and
are unit-tested without Kafka; `Daemon` is the shell around them.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from mmplan.apply.execute import Outcome
from mmplan.apply.workflow import apply_plan, plan_topology
from mmplan.daemon.gitsource import GitSource
from mmplan.daemon.lease import Lease
from mmplan.daemon.logs import Redactor, topology_secrets
from mmplan.daemon.metrics import Metrics
from mmplan.daemon.sidework import FlowSideWork, daemon_id
from mmplan.errors import MmplanError
from mmplan.graph.checks import check_topology
from mmplan.graph.compile import CompiledFlow, compile_topology
from mmplan.plan.model import Action, Change, ChangeKind, Plan
from mmplan.plan.render_json import plan_document
from mmplan.plan.summary import SYMBOL, describe
from mmplan.state.snapshot import Snapshot
from mmplan.topology.findings import has_errors
from mmplan.topology.loader import LoadedTopology, load_topology
from mmplan.topology.models import Engine, Topology, format_duration

log = logging.getLogger("mmplan.run")

STOP_TIMEOUT = 30.0
LEASE_WAIT = 8.0  # at start, how long to wait for the applier lease before the first reconcile
FILE_POLL = 1.0  # how often a file topology is checked for changes between reconciles
SIDE_FINISH = 3.0  # of the stop bound, kept for writing the `stopped` status records after the flows drained
CONFIG_KINDS = (ChangeKind.set_config, ChangeKind.unset_config)
ACL_KINDS = (ChangeKind.create_acl,)


class Runner(Protocol):
    """What the daemon needs of a flow's replication loop (`mmplan.daemon.flow.FlowRunner`)."""

    name: str
    state: str
    error: str | None

    def set_topics(self, source_topics: Iterable[str]) -> None: ...

    def run(self, stop: threading.Event) -> None: ...


RunnerFactory = Callable[..., Runner]


class SideWork(Protocol):
    """A flow's side work (`mmplan.daemon.sidework.FlowSideWork`)."""

    def start(self) -> None: ...

    def halt(self) -> None: ...

    def finish(self, timeout: float, error: str | None = None) -> bool: ...


SideFactory = Callable[..., SideWork]


# --- the pure parts -------------------------------------------------------------------------------------------


def reconcile_interval(flows: Iterable[CompiledFlow], override: float | None = None) -> float:
    """Seconds between reconciles: `--reconcile-interval`, else the shortest `refresh_topics.interval`."""
    if override is not None:
        return override
    return min((f.settings.refresh_topics.interval for f in flows), default=60.0)


@dataclass
class SyncClock:
    """When each flow's topic-config and ACL sync is next due (monotonic seconds); due at once when unknown."""

    configs: dict[str, float] = field(default_factory=dict)
    acls: dict[str, float] = field(default_factory=dict)

    def configs_due(self, flow: str, now: float) -> bool:
        return self.configs.get(flow, 0.0) <= now

    def acls_due(self, flow: str, now: float) -> bool:
        return self.acls.get(flow, 0.0) <= now


@dataclass(frozen=True)
class Selection:
    """A plan's pending changes split into what the daemon applies now and what it leaves."""

    apply: list[Change]
    held_deletes: list[Change]
    deferred: list[Change]

    def plan(self, plan: Plan) -> Plan:
        """The plan to hand to `apply_plan`: the same plan with only the changes to make now."""
        return plan.model_copy(update={"changes": list(self.apply)})


def safe_changes(plan: Plan, clock: SyncClock, now: float, allow_delete: Collection[str] = ()) -> Selection:
    """Deletes only of the flows in `allow_delete` (their `allow_delete` setting), others held whatever the plan
    says; config and ACL changes of a flow only when its sync is due; the rest now.

    Changes without a flow (none today) are applied at once.
    """
    apply, held, deferred = [], [], []
    for change in plan.changes:
        if change.action is Action.delete and change.flow in allow_delete:
            apply.append(change.model_copy(update={"held": False}))
        elif change.action is Action.delete:
            held.append(change)
        elif change.flow and change.kind in CONFIG_KINDS and not clock.configs_due(change.flow, now):
            deferred.append(change)
        elif change.flow and change.kind in ACL_KINDS and not clock.acls_due(change.flow, now):
            deferred.append(change)
        else:
            apply.append(change)
    return Selection(apply, held, deferred)


def advance_clock(clock: SyncClock, flows: Iterable[CompiledFlow], selection: Selection,
                  outcomes: Iterable[Outcome], now: float) -> None:
    """After an apply: a flow whose due config/ACL changes all succeeded (or had none) is next due an interval
    later; one with a failure stays due, so the next reconcile retries."""
    failed_configs = {o.change.flow for o in outcomes if not o.ok and o.change.kind in CONFIG_KINDS}
    failed_acls = {o.change.flow for o in outcomes if not o.ok and o.change.kind in ACL_KINDS}
    for flow in flows:
        s = flow.settings
        if clock.configs_due(flow.name, now) and flow.name not in failed_configs:
            clock.configs[flow.name] = now + s.sync_topic_configs.interval
        if clock.acls_due(flow.name, now) and flow.name not in failed_acls:
            clock.acls[flow.name] = now + s.sync_topic_acls.interval


def pending_changes(selection: Selection, applier: bool) -> list[tuple[str, str, str]]:
    """(cluster, kind, reason) of every change a reconcile leaves: held deletes, syncs not yet due, and, in a
    daemon that is not the applier, everything it would have applied."""
    left = [(c, "held") for c in selection.held_deletes] + [(c, "deferred") for c in selection.deferred]
    if not applier:
        left += [(c, "applier") for c in selection.apply]
    return [(c.cluster, c.kind.value, reason) for c, reason in left]


def replicated_topics(flows: Iterable[CompiledFlow], snapshot: Snapshot,
                      created: Iterable[tuple[str, str]] = ()) -> dict[str, list[str]]:
    """For each flow whose source and target were read: the source topics it replicates whose remote topic
    exists on the target. Existing means in the snapshot, or in `created`: the (cluster, topic) pairs this
    reconcile created (on the target, and on the source too: its heartbeats topic, say).

    Flows with a cluster missing from the snapshot are left out: their runners keep their last topics.
    """
    made = set(created)
    out: dict[str, list[str]] = {}
    for flow in flows:
        source, target = snapshot.clusters.get(flow.source), snapshot.clusters.get(flow.target)
        if source is None or target is None:
            continue
        names = set(source.topics) | {topic for cluster, topic in made if cluster == flow.source}
        out[flow.name] = sorted(
            name for name in names
            if flow.hop.replicates(name)
            and ((remote := flow.policy.remote_topic(name)) in target.topics or (flow.target, remote) in made))
    return out


def created_topics(outcomes: Iterable[Outcome]) -> set[tuple[str, str]]:
    return {(o.change.cluster, o.change.topic) for o in outcomes
            if o.ok and o.change.kind is ChangeKind.create_topic}


def running_flows(compiled_flows: Iterable[CompiledFlow]) -> list[CompiledFlow]:
    """The flows the daemon runs: the enabled ones with `engine: daemon` (Kafka Connect runs the `connect` ones,
    heartbeats and checkpoints included)."""
    return [f for f in compiled_flows if f.settings.enabled and f.settings.engine is Engine.daemon]


# --- the shell ------------------------------------------------------------------------------------------------


@dataclass
class Current:
    """The last good topology: what the daemon runs."""

    loaded: LoadedTopology
    digest: str
    flows: list[CompiledFlow]
    commit: str | None = None  # the git commit it came from

    @property
    def version(self) -> str:
        return self.commit or self.digest


@dataclass
class Slot:
    flow: CompiledFlow
    runner: Runner
    stop: threading.Event
    thread: threading.Thread
    identity: Any
    topics: list[str] | None = None
    side: SideWork | None = None


@dataclass
class ReconcileResult:
    at: datetime
    ok: bool
    summary: str
    seconds: float

    def doc(self) -> dict:
        return {"at": self.at.isoformat(timespec="seconds").replace("+00:00", "Z"), "ok": self.ok,
                "result": self.summary, "seconds": round(self.seconds, 3)}


def load_checked(file: str, flow_names: tuple[str, ...]) -> tuple[LoadedTopology, list[CompiledFlow]]:
    """Read, check and select: the topology and the flows to run. Raises MmplanError (TopologyError for
    parse/schema problems) when it is not fit to run; check findings are in the message."""
    loaded = load_topology(file)
    findings = check_topology(loaded)
    if has_errors(findings):
        errors = [f for f in findings if f.severity == "error"]
        first = errors[0]
        where = f"{file}:{first.line}" if first.line else file
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise MmplanError(f"{first.message} [{first.code}]{more}", where=where,
                          hint="`mmplan validate` lists every finding")
    flows = running_flows(compile_topology(loaded.topology).select(flow_names))
    if not flows:
        raise MmplanError("no enabled flow to run", where=file,
                          hint="enable a flow, or name enabled ones with --flow")
    return loaded, flows


def _digest(file: str) -> str:
    try:
        return hashlib.sha256(Path(file).read_bytes()).hexdigest()
    except OSError:
        return ""


def _identity(flow: CompiledFlow, topology: Topology) -> Any:
    """What a runner was built from: a change restarts it."""
    return (flow.source, flow.target, flow.settings,
            topology.clusters.get(flow.source), topology.clusters.get(flow.target))


class Daemon:
    """Runs the flows of one topology file until `stop` is set.

    `runner_factory(flow, topology, metrics=..., logger=...)` makes a flow's runner (`FlowRunner`);
    `side_factory(flow, topology, runner_state=..., daemon=..., version=..., metrics=..., logger=..., timeout=...,
    reconcile_report=...)`
    its side work (`FlowSideWork`; None: no side work). `git`: the topology comes from git, checked out at
    `file` (already synced once, at `commit`). `lease`: apply only while holding it (None: always apply).
    """

    def __init__(self, file: str, loaded: LoadedTopology, flows: list[CompiledFlow], *,
                 flow_names: tuple[str, ...] = (), metrics: Metrics | None = None,
                 runner_factory: RunnerFactory, timeout: float = 10.0, interval: float | None = None,
                 redact: Redactor | None = None, stop_timeout: float = STOP_TIMEOUT,
                 plan_fn: Callable[..., Any] = plan_topology, apply_fn: Callable[..., Any] = apply_plan,
                 side_factory: SideFactory | None = FlowSideWork, git: GitSource | None = None,
                 commit: str | None = None, lease: Lease | None = None) -> None:
        self.file = file
        self.git = git
        self.lease = lease
        self.flow_names = flow_names
        self.metrics = metrics or Metrics()
        self.runner_factory = runner_factory
        self.side_factory = side_factory
        self.daemon_id = daemon_id()
        self.timeout = timeout
        self.interval_override = interval
        self.redact = redact or Redactor()
        self.redact.update(topology_secrets(loaded.topology))
        self.stop_timeout = stop_timeout
        self._plan, self._apply = plan_fn, apply_fn
        self.current = Current(loaded, _digest(file), flows, commit)
        self._seen_digest = self.current.digest  # the file content the last reload looked at
        self._report_running()
        self.stale: str | None = None  # why the file on disk is not the topology running
        self.last: ReconcileResult | None = None
        # the last reconcile's report, carried in the status records (`reconcile_report`)
        self.applier: bool | None = None
        self.reconciled_ms: int | None = None  # the last successful reconcile
        self.pending: dict[str, int] | None = None  # changes left, per reason
        self.clock = SyncClock()
        self.slots: dict[str, Slot] = {}
        self._logged_held: set[tuple[str, str]] = set()
        self._logged_warnings: set[tuple[str, str]] = set()
        self._lock = threading.RLock()
        self.stopping = threading.Event()
        self.wake = threading.Event()

    # -- health ---------------------------------------------------------------------------------------------

    @property
    def interval(self) -> float:
        return reconcile_interval(self.current.flows, self.interval_override)

    def states(self) -> dict[str, tuple[str, str | None]]:
        slots = dict(self.slots)  # no lock: /healthz must answer while a flow restarts
        out = {}
        for flow in self.current.flows:
            slot = slots.get(flow.name)
            out[flow.name] = (slot.runner.state, slot.runner.error) if slot else ("starting", None)
        for name, slot in slots.items():
            out.setdefault(name, (slot.runner.state, slot.runner.error))
        return out

    def side_problems(self) -> dict[str, dict[str, str]]:
        """flow -> {kind: error} of its heartbeats, checkpoints, group offset sync or status records failing now
        (shown in /healthz; they never make a flow unhealthy: replication goes on)."""
        out = {}
        for name, slot in dict(self.slots).items():
            problems = getattr(slot.side, "problems", None)
            if problems is not None and (found := problems()):
                out[name] = found
        return out

    def health(self) -> tuple[bool, dict]:
        """Healthy when every flow is running. The detail: each flow's state and error, the last reconcile,
        and why the topology file is not the one running, if it is not."""
        states = self.states()
        detail = {
            "ok": bool(states) and all(state == "running" for state, _ in states.values()),
            "flows": {name: {"state": state, "error": error} for name, (state, error) in states.items()},
            "reconcile": self.last.doc() if self.last else None,
            "side_work": self.side_problems(),
            "reconcile_interval_s": self.interval,
            "topology": {"file": self.file, "git": self.git.where if self.git else None,
                         "version": self.current.version, "stale": self.stale},
            "applier": self.lease is None or self.lease.held,
        }
        return detail["ok"], self.redact.value(detail)

    # -- reconcile ------------------------------------------------------------------------------------------

    def reload(self) -> Current:
        """The topology to reconcile with: the file (or the git ref's newest commit) if it changed and is fit to
        run, else the last good one."""
        commit = None
        if self.git is not None:
            try:
                _, commit = self.git.sync()
            except MmplanError as e:
                self._not_used(e, "the topology cannot be fetched")
                return self.current
        digest = self._seen_digest = _digest(self.file)
        if digest == self.current.digest:
            self.stale = None  # back to the topology running (or never changed)
            if commit and commit != self.current.commit:
                self.current.commit = commit  # same topology, newer commit
                self._report_running()
            return self.current
        try:
            loaded, flows = load_checked(self.file, self.flow_names)
        except MmplanError as e:
            self._not_used(e, "the topology changed but cannot be used")
            return self.current
        log.info("topology reloaded: %d flow(s) to run", len(flows),
                 extra={"file": self.file, "version": commit or digest})
        self.stale = None
        self.redact.update(topology_secrets(loaded.topology))
        self.current = Current(loaded, digest, flows, commit)
        self._report_running()
        return self.current

    def _not_used(self, e: MmplanError, what: str) -> None:
        why = e.render().replace("\n", "; ")
        if why != self.stale:
            log.error("%s, running the last good one (%s): %s", what, self.current.version[:12], why,
                      extra={"file": self.file})
        self.stale = why

    def _report_running(self) -> None:
        self.metrics.running("git" if self.git else "file", self.current.version,
                             {f.name: f.settings.rpo for f in self.current.flows})

    def file_changed(self) -> bool:
        """A file topology whose content is not the one running (git sources are checked at each reconcile)."""
        return self.git is None and _digest(self.file) != self._seen_digest

    def reconcile(self) -> ReconcileResult:
        """One reconcile; never raises. Starts, restarts and stops runners to match the topology."""
        started = time.monotonic()
        at = datetime.now(timezone.utc)
        ok, summary = True, ""
        topics: dict[str, list[str]] = {}
        applied: list[tuple[str, str]] = []
        pending: list[tuple[str, str, str]] = []
        try:
            current = self.reload()
            live = self._plan(current.loaded, tuple(f.name for f in current.flows), allow_delete=False,
                              timeout=self.timeout)
            plan, snapshot = live.plan, live.snapshot
            self._log_warnings(plan)
            if plan.has_errors:
                errors = [p for p in plan.problems if p.severity == "error"]
                for p in errors:
                    log.error("reconcile: %s", p.message, extra={"code": p.code, **_ctx(p.flow, p.cluster)})
                ok, summary = False, f"{len(errors)} error(s): " + "; ".join(p.message for p in errors[:3])
                topics = replicated_topics(current.flows, snapshot)
            else:
                ok, summary, topics, applied, pending = self._apply_safe(current, plan, snapshot)
        except MmplanError as e:
            ok, summary = False, e.render().replace("\n", "; ")
            log.error("reconcile failed: %s", summary)
        except Exception as e:  # a bug or an unexpected client error: keep the flows going, retry later
            ok, summary = False, f"{type(e).__name__}: {e}"
            log.exception("reconcile failed unexpectedly")
        if self.stale:
            summary += f" (topology file not used: {self.stale})"
        if not ok:  # `mmplan_errors_total{kind="reconcile"}`: one per failed reconcile, for each flow it covers
            for flow in self.current.flows:
                self.metrics.error(flow.name, "reconcile")
        self.applier = self._is_applier()
        self.metrics.reconciled(ok and not self.stale, applied, pending, self.applier)
        self.pending = dict(collections.Counter(reason for _, _, reason in pending))
        if ok and not self.stale:
            self.reconciled_ms = int(at.timestamp() * 1000)
        self._hand_out(topics)
        self.last = ReconcileResult(at, ok, summary, time.monotonic() - started)
        return self.last

    def reconcile_report(self) -> dict:
        """What the status records carry: version running, applier, last successful reconcile, pending changes."""
        return {"version": self.current.version[:12] or None, "applier": self.applier,
                "reconciled_ms": self.reconciled_ms, "pending": self.pending}

    def _log_warnings(self, plan: Plan) -> None:
        """A plan's warnings (a partition mismatch, replication-factor drift) once each, not every reconcile."""
        for p in plan.problems:
            if p.severity != "error" and (p.code, p.message) not in self._logged_warnings:
                self._logged_warnings.add((p.code, p.message))
                log.warning("%s", p.message, extra={"code": p.code, **_ctx(p.flow, p.cluster)})

    def _is_applier(self) -> bool:
        if self.lease is None:
            return True
        try:
            return self.lease.held
        except MmplanError as e:  # the lease cannot be joined (e.g. its topic cannot be created): apply nothing
            log.error("applier lease: %s", e.render().replace("\n", "; "))
            return False

    def _apply_safe(self, current: Current, plan: Plan, snapshot: Snapshot) -> tuple[bool, str, dict, list, list]:
        now = time.monotonic()
        selection = safe_changes(plan, self.clock, now, {f.name for f in current.flows if f.settings.allow_delete})
        applier = self._is_applier()
        pending = pending_changes(selection, applier)
        if not applier:
            topics = replicated_topics(current.flows, snapshot)
            summary = f"not the applier: {len(selection.apply)} change(s) left to it" if selection.apply else \
                "not the applier: nothing to apply"
            log.log(logging.INFO if selection.apply else logging.DEBUG, "reconcile: %s", summary)
            return True, summary, topics, [], pending
        for change in selection.held_deletes:
            key = (change.cluster, describe(change))
            if key not in self._logged_held:
                self._logged_held.add(key)
                log.warning("held: %s %s: %s (the daemon never deletes; run `mmplan apply --allow-delete`)",
                            SYMBOL[change.action], change.cluster, describe(change), extra=_ctx(change.flow, None))
        if selection.deferred:
            log.debug("%d config/ACL change(s) wait for their flow's sync interval", len(selection.deferred))
        outcomes: list[Outcome] = []
        if selection.apply:
            try:
                outcomes = self._apply(selection.plan(plan), current.loaded.topology, timeout=self.timeout,
                                       report=_log_outcome)
            except MmplanError as e:
                # nothing created: hand out what the snapshot shows, and retry the changes next time
                why = e.render().replace("\n", "; ")
                log.error("reconcile: apply failed: %s", why)
                return False, f"apply failed: {why}", replicated_topics(current.flows, snapshot), [], pending
        advance_clock(self.clock, current.flows, selection, outcomes, now)
        failed = [o for o in outcomes if not o.ok]
        if outcomes:
            log.info("applied plan", extra={"version": current.version, "plan": plan_document(selection.plan(plan))})
        topics = replicated_topics(current.flows, snapshot, created_topics(outcomes))
        summary = f"applied {len(outcomes) - len(failed)} of {len(outcomes)} change(s)"
        if failed:
            summary += f", {len(failed)} failed"
        if selection.held_deletes:
            summary += f", {len(selection.held_deletes)} delete(s) held"
        if selection.deferred:
            summary += f", {len(selection.deferred)} config/ACL change(s) wait for their sync interval"
        # the first reconcile and every one that changed something are news; a quiet one is not
        log.log(logging.INFO if outcomes or self.last is None else logging.DEBUG,
                "reconcile: %s; replicating %s", summary,
                 ", ".join(f"{name}: {len(t)} topic(s)" for name, t in topics.items()) or "nothing yet")
        applied = [(o.change.cluster, o.change.kind.value) for o in outcomes if o.ok]
        pending += [(o.change.cluster, o.change.kind.value, "failed") for o in failed]
        return not failed, summary, topics, applied, pending

    def _hand_out(self, topics: Mapping[str, list[str]]) -> None:
        """Match the runners to the current flows, and give each its topics (before a new one starts).

        A removed flow's runner is stopped; a flow whose settings or clusters changed gets a new runner once
        the old one has drained (never two runners of one flow at once)."""
        wanted = {f.name: f for f in self.current.flows}
        topology = self.current.loaded.topology
        identities = {name: _identity(flow, topology) for name, flow in wanted.items()}
        with self._lock:
            if self.stopping.is_set():
                return
            old = []
            for name, slot in list(self.slots.items()):
                if name not in wanted:
                    log.info("flow removed from the topology: stopping it", extra={"flow": name})
                elif slot.identity != identities[name]:
                    log.info("flow settings changed: restarting it", extra={"flow": name})
                else:
                    continue
                slot.stop.set()
                old.append(self.slots.pop(name))
        for slot in old:
            self._stop_slot(slot)
            if slot.flow.name not in wanted:
                self.metrics.forget(slot.flow.name)
        with self._lock:
            if self.stopping.is_set():
                return
            for name, flow in wanted.items():
                slot = self.slots.get(name)
                if slot is None:
                    slot = self.slots[name] = self._new_slot(flow, topology, identities[name])
                if name in topics and topics[name] != slot.topics:
                    slot.runner.set_topics(topics[name])
                    if slot.topics is not None or topics[name]:
                        log.info("replicating %d topic(s)", len(topics[name]),
                                 extra={"flow": name, "topics": topics[name][:50]})
                    slot.topics = topics[name]
                if slot.thread.ident is None:
                    slot.thread.start()
                    if slot.side is not None:
                        slot.side.start()

    def _new_slot(self, flow: CompiledFlow, topology: Topology, identity: Any) -> Slot:
        runner = self.runner_factory(flow, topology, metrics=self.metrics, logger=flow_logger(flow.name))
        stop = threading.Event()

        def run() -> None:
            try:
                runner.run(stop)
            except Exception:  # FlowRunner.run never raises; a stand-in might
                log.exception("flow runner crashed", extra={"flow": flow.name})
            if not stop.is_set():
                log.error("flow stopped on its own: %s", runner.error or "no error given",
                          extra={"flow": flow.name, "state": runner.state})

        thread = threading.Thread(target=run, name=f"mmplan-flow-{flow.name}", daemon=True)
        side = None
        if self.side_factory is not None:
            try:
                def runner_state() -> tuple[str, str | None]:  # the status records are read by others: redacted
                    return runner.state, self.redact(runner.error) if runner.error else None

                side = self.side_factory(flow, topology, runner_state=runner_state,
                                         daemon=self.daemon_id, version=self.current.version[:12] or None,
                                         metrics=self.metrics, logger=flow_logger(flow.name), timeout=self.timeout,
                                         reconcile_report=self.reconcile_report)
            except Exception:  # never keep a flow from replicating
                log.exception("cannot set up heartbeats, checkpoints and status records", extra={"flow": flow.name})
        return Slot(flow, runner, stop, thread, identity, side=side)

    def _stop_slot(self, slot: Slot, timeout: float | None = None) -> bool:
        slot.stop.set()
        if slot.side is not None:
            slot.side.halt()
        if slot.thread.ident is None:
            return True
        deadline = time.monotonic() + (self.stop_timeout if timeout is None else timeout)
        slot.thread.join(max(0.0, deadline - time.monotonic() - self._side_reserve([slot])))
        stopped = not slot.thread.is_alive()
        if not stopped:
            log.error("flow did not stop within %s", format_duration(self.stop_timeout),
                      extra={"flow": slot.flow.name})
        self._finish_side(slot, deadline)
        return stopped

    def _side_reserve(self, slots: Iterable[Slot]) -> float:
        return min(SIDE_FINISH, self.stop_timeout / 4) if any(s.side is not None for s in slots) else 0.0

    @staticmethod
    def _finish_side(slot: Slot, deadline: float) -> None:
        """The `stopped` status record once the runner drained (or gave up), in what is left of the bound."""
        if slot.side is None:
            return
        error = None if not slot.thread.is_alive() else "the flow did not finish draining"
        try:
            slot.side.finish(max(0.5, deadline - time.monotonic()), error)
        except Exception:
            log.exception("finishing heartbeats, checkpoints and status records failed", extra={"flow": slot.flow.name})

    # -- lifecycle ------------------------------------------------------------------------------------------

    def reconcile_loop(self) -> None:
        """Reconcile now, then every interval, whenever `wake` is set, and when a topology file changes."""
        if self.lease is not None:  # the first reconcile applies what is missing, if this daemon is the applier
            try:
                self.lease.wait(LEASE_WAIT)
            except MmplanError as e:
                log.error("applier lease: %s", e.render().replace("\n", "; "))
        while not self.stopping.is_set():
            self.wake.clear()
            self.reconcile()
            due = time.monotonic() + self.interval
            while not self.stopping.is_set() and not self.wake.wait(min(FILE_POLL, max(0.0, due - time.monotonic()))):
                if time.monotonic() >= due:
                    break
                if self.file_changed():
                    log.info("the topology file changed: reconciling now", extra={"file": self.file})
                    break

    def request_reconcile(self) -> None:
        self.wake.set()

    def run(self, stop: threading.Event, poll: float = 0.5) -> int:
        """Run until `stop` is set; then stop every flow (bounded). 0 when all stopped cleanly, else 1."""
        log.info("mmplan run: %d flow(s): %s; reconcile every %s", len(self.current.flows),
                 ", ".join(f.name for f in self.current.flows), format_duration(self.interval),
                 extra={"file": self.file})
        reconciler = threading.Thread(target=self.reconcile_loop, name="mmplan-reconcile", daemon=True)
        reconciler.start()
        while not stop.wait(poll):  # a timed wait lets the main thread run signal handlers
            pass
        return self.shutdown()

    def shutdown(self) -> int:
        log.info("stopping: draining and committing every flow")
        with self._lock:
            self.stopping.set()
            self.wake.set()
            slots = list(self.slots.values())
        for slot in slots:
            slot.stop.set()
            if slot.side is not None:
                slot.side.halt()
        deadline = time.monotonic() + self.stop_timeout
        flows_deadline = deadline - self._side_reserve(slots)  # room left for the `stopped` status records
        clean = True
        for slot in slots:
            if slot.thread.ident is not None:
                slot.thread.join(max(0.0, flows_deadline - time.monotonic()))
            if slot.thread.is_alive():
                clean = False
                log.error("flow did not stop within %s", format_duration(self.stop_timeout),
                          extra={"flow": slot.flow.name})
        sides = [slot for slot in slots if slot.side is not None and slot.thread.ident is not None]
        if sides:  # concurrently: one unreachable target must not use up the others' time
            finishers = [threading.Thread(target=self._finish_side, args=(slot, deadline), daemon=True)
                         for slot in sides]
            for t in finishers:
                t.start()
            for t in finishers:
                t.join(max(0.0, deadline - time.monotonic()) + 0.5)
        if self.lease is not None:
            self.lease.close()
        log.info("stopped" if clean else "stopped, but some flows did not finish draining")
        return 0 if clean else 1


class _FlowField(logging.Filter):
    """Gives every record of a flow's logger a `flow` field (a JSON log field; `[flow=...]` in text)."""

    def __init__(self, flow: str) -> None:
        super().__init__()
        self.flow = flow

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "flow"):
            record.flow = self.flow
        return True


def flow_logger(name: str) -> logging.Logger:
    """The logger a flow's runner logs to: `mmplan.flow.<name>`, its records carrying `flow`."""
    logger = logging.getLogger(f"mmplan.flow.{name}")
    if not any(isinstance(f, _FlowField) for f in logger.filters):
        logger.addFilter(_FlowField(name))
    return logger


def _ctx(flow: str | None, cluster: str | None) -> dict:
    return {k: v for k, v in (("flow", flow), ("cluster", cluster)) if v}


def _log_outcome(outcome: Outcome) -> None:
    change = outcome.change
    what = f"{SYMBOL[change.action]} {change.cluster}: {describe(change)}"
    extra = {"change": change.kind.value, **_ctx(change.flow, change.cluster)}
    if outcome.ok:
        log.info("applied %s", what, extra=extra)
    elif outcome.skipped:
        log.warning("skipped %s: %s", what, outcome.error, extra=extra)
    else:
        log.error("failed %s: %s", what, outcome.error, extra=extra)
