"""`mmplan status`: one flow's health from what the clusters hold. Pure: `flow_status(FlowFacts)`.

State:
- mmplan daemons: the newest status record of each daemon (`mmplan.daemon.status_record`). A record that is
  not `stopped` and was not rewritten within three of its intervals is stale: that daemon is gone. The flow is
  `running` (or `started`, `retrying`) when a live daemon says so; `failed` when live daemons only report
  failures; `stopped` when every daemon stopped cleanly; `down` when only stale records are left.
- Heartbeats (when the flow has them): the newest heartbeat on the target's `<source><sep><heartbeats>` topic must
  be younger than three heartbeat intervals, or the flow is not running, whatever the daemons say (`stalled`
  when a daemon claims to run; `down` for a flow with no mmplan status records, e.g. one run by MirrorMaker 2).

Exposure (what failing over now could lose, compared with the flow's `rpo`):
- the newest heartbeat's age: every record written on the source before it is on the target;
- each group's checkpoint age, unless its checkpoints are current (their upstream offsets equal the group's
  committed source offsets: nothing newer to checkpoint, as for an idle group).
Verdict: `breached` above the RPO, `at risk` above half of it, else `ok`; `none` when the flow sets no RPO.
A flow is healthy when its state is running or started and its verdict is not breached; `status` exits 1 otherwise.

Flows with `engine: connect` (MirrorMaker 2's three connectors on a Kafka Connect cluster): the state comes from
the Connect REST API instead of status records (`connect_status` over the heartbeat/checkpoint status): `running`
when every connector and task is RUNNING (and heartbeats are fresh, else `stalled`); `failed` with the first line
of the failed connector's or task's trace; `paused`, `stopped`, `unassigned` as Connect reports them; `missing`
when a connector does not exist; `unreachable` (naming the URL) when no worker answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mmplan.daemon.status_record import StatusRecord

UP_STATES = ("running", "started")
AT_RISK_SHARE = 0.5  # over half the RPO is "at risk"


@dataclass(frozen=True)
class GroupCheckpoints:
    group: str
    newest_ms: int  # the newest checkpoint record's timestamp
    partitions: int
    behind: int  # partitions whose committed source offset is past the checkpoint's upstream offset
    unknown: bool = False  # the group's source offsets could not be read

    @property
    def current(self) -> bool:
        return not self.unknown and self.behind == 0


@dataclass(frozen=True)
class FlowFacts:
    flow: str
    now_ms: int
    engine: str  # "mmplan" | "mirrormaker2" | "unknown": who writes the position
    records: list[StatusRecord] = field(default_factory=list)
    heartbeats_enabled: bool = True
    heartbeat_interval_ms: int = 1000
    newest_heartbeat_ms: int | None = None  # the newest heartbeat's own timestamp
    rpo_ms: int | None = None
    lag: dict[str, int] | None = None  # source topic -> records not yet replicated; None: position unknown
    groups: list[GroupCheckpoints] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FlowStatus:
    flow: str
    engine: str
    state: str
    reason: str
    heartbeat_age_ms: int | None
    lag: dict[str, int] | None
    groups: list[GroupCheckpoints]
    exposure_ms: int | None
    rpo_ms: int | None
    verdict: str  # ok | at risk | breached | none
    now_ms: int
    daemons: list[StatusRecord]
    lag_note: str = ""  # why the lag is unknown, or what it is as of
    connect: ConnectFacts | None = None  # engine: connect flows only

    @property
    def up(self) -> bool:
        return self.state in UP_STATES

    @property
    def healthy(self) -> bool:
        return self.up and self.verdict != "breached"

    def doc(self) -> dict:
        return {
            "flow": self.flow, "engine": self.engine, "state": self.state, "reason": self.reason,
            "up": self.up, "healthy": self.healthy, "verdict": self.verdict, "rpo_ms": self.rpo_ms,
            "exposure_ms": self.exposure_ms, "heartbeat_age_ms": self.heartbeat_age_ms,
            "lag": self.lag, "lag_total": None if self.lag is None else sum(self.lag.values()),
            "groups": [{"group": g.group, "checkpoint_age_ms": max(0, self.now_ms - g.newest_ms),
                        "partitions": g.partitions, "behind": g.behind, "current": g.current} for g in self.groups],
            "daemons": [{"daemon": r.daemon, "state": r.state, "stale": r.stale(self.now_ms),
                         "age_ms": max(0, self.now_ms - r.time_ms), "error": r.error, "version": r.version,
                         "applier": r.applier, "reconciled_ms": r.reconciled_ms,
                         "reconciled_age_ms": None if r.reconciled_ms is None
                         else max(0, self.now_ms - r.reconciled_ms),
                         "pending": r.pending} for r in self.daemons],
            **({"lag_note": self.lag_note} if self.lag_note else {}),
            **({"connect": self.connect.doc()} if self.connect is not None else {}),
        }


# -- engine: connect ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectorState:
    """One of a connect flow's connectors as the REST API reports it; `state` None: it does not exist."""

    name: str
    kind: str  # source | checkpoint | heartbeat
    state: str | None
    trace: str | None = None
    tasks: list[tuple[int, str, str | None]] = field(default_factory=list)  # (id, state, trace)

    def doc(self) -> dict:
        return {"name": self.name, "kind": self.kind, "state": self.state or "MISSING",
                "trace": first_line(self.trace),
                "tasks": [{"id": i, "state": st, "trace": first_line(tr)} for i, st, tr in self.tasks]}


@dataclass(frozen=True)
class ConnectFacts:
    """A connect flow's connectors on its Connect cluster (`url`); `unreachable`: why no worker answered."""

    url: str
    connectors: list[ConnectorState] = field(default_factory=list)
    unreachable: str | None = None

    def doc(self) -> dict:
        return {"url": self.url, "unreachable": self.unreachable, "connectors": [c.doc() for c in self.connectors]}


def first_line(trace: str | None) -> str | None:
    return trace.strip().splitlines()[0] if trace and trace.strip() else None


_CONNECT_ORDER = ("FAILED", "MISSING", "STOPPED", "PAUSED", "UNASSIGNED", "RESTARTING")


def connect_state(facts: ConnectFacts) -> tuple[str, str]:
    """(state, reason) of a connect flow from its connectors: the worst connector or task wins."""
    if facts.unreachable is not None:
        return "unreachable", (facts.unreachable if facts.url in facts.unreachable
                               else f"Kafka Connect at {facts.url} is unreachable: {facts.unreachable}")
    found: dict[str, list[tuple[str, str | None]]] = {}  # state -> (what, first line of its trace)
    for c in facts.connectors:
        state = c.state or "MISSING"
        if state != "RUNNING":
            found.setdefault(state, []).append((f"connector {c.name}", first_line(c.trace)))
        for task_id, task_state, task_trace in c.tasks:
            if task_state != "RUNNING" and task_state != state:  # a paused connector's tasks are paused too
                found.setdefault(task_state, []).append((f"task {c.name}/{task_id}", first_line(task_trace)))
    for state in (*_CONNECT_ORDER, *sorted(found)):
        if state in found:
            word = f"does not exist on {facts.url} (run mmplan apply)" if state == "MISSING" else state.lower()
            return state.lower(), "; ".join(f"{what} {word}" + (f": {trace}" if trace else "")
                                            for what, trace in found[state])
    tasks = sum(len(c.tasks) for c in facts.connectors)
    return "running", (f"{len(facts.connectors)} connectors and {tasks} task{'s' if tasks != 1 else ''} "
                       f"running on {facts.url}")


def connect_status(base: FlowStatus, facts: ConnectFacts, heartbeat_limit_ms: int | None,
                   lag: dict[str, int] | None, lag_note: str) -> FlowStatus:
    """A connect flow's status: `base` (heartbeats, checkpoints, exposure and verdict, read as for any flow)
    with the state from its connectors, the heartbeats' freshness (`heartbeat_limit_ms`, None when the flow
    has none) and the lag from the Connect offsets (None: unknown, `lag_note` says why)."""
    state, reason = connect_state(facts)
    if base.state == "unreachable":  # the target did not answer: nothing else is known
        return replace(base, engine="connect", reason=f"{base.reason}; connectors: {reason}",
                       lag_note=lag_note, connect=facts)
    age = base.heartbeat_age_ms
    if state == "running" and heartbeat_limit_ms is not None and (age is None or age > heartbeat_limit_ms):
        why = ("no heartbeat has arrived on the target" if age is None else
               f"the newest heartbeat on the target is {age / 1000:.1f}s old (limit {heartbeat_limit_ms / 1000:g}s)")
        state, reason = "stalled", f"{reason}, but {why}"
    extra = [part for part in base.reason.split("; ")[1:]]  # errors reading the source, as for other flows
    if extra:
        reason += "; " + "; ".join(extra)
    return replace(base, engine="connect", state=state, reason=reason, lag=lag, lag_note=lag_note, connect=facts)


def lag_from(ends: dict[tuple[str, int], int], positions: dict[tuple[str, int], int]) -> dict[str, int]:
    """Records not yet replicated per source topic: the source's end offsets minus the positions (0 when none)."""
    lag: dict[str, int] = {}
    for (topic, partition), end in ends.items():
        lag[topic] = lag.get(topic, 0) + max(0, end - positions.get((topic, partition), 0))
    return lag


_PRIORITY = ("running", "started", "retrying", "failed")


def daemon_state(records: list[StatusRecord], now_ms: int) -> tuple[str | None, str]:
    """(state, reason) from the daemons' status records; (None, ...) when there are none."""
    if not records:
        return None, "no mmplan status records"
    live = [r for r in records if r.state != "stopped" and not r.stale(now_ms)]
    for state in _PRIORITY:
        found = [r for r in live if r.state == state]
        if found:
            newest = max(found, key=lambda r: r.time_ms)
            detail = f": {newest.error}" if newest.error and state != "running" else ""
            return state, f"{len(found)} daemon{'s' if len(found) != 1 else ''} {state}{detail}"
    stale = [r for r in records if r.state != "stopped" and r.stale(now_ms)]
    if stale:
        newest = max(stale, key=lambda r: r.time_ms)
        return "down", (f"no daemon running: the last one ({newest.state}) has not reported for "
                        f"{(now_ms - newest.time_ms) / 1000:.0f}s")
    return "stopped", "every daemon stopped cleanly"


def verdict(exposure_ms: int | None, rpo_ms: int | None) -> str:
    if rpo_ms is None:
        return "none"
    if exposure_ms is None or exposure_ms > rpo_ms:
        return "breached"
    if exposure_ms > rpo_ms * AT_RISK_SHARE:
        return "at risk"
    return "ok"


def flow_status(facts: FlowFacts, unreachable: bool = False) -> FlowStatus:
    """The flow's status; `unreachable`: its target could not be read, so nothing is known but that."""
    now = facts.now_ms
    state, reason = daemon_state(facts.records, now)
    if unreachable:
        state, reason = "unreachable", "no answer from the target"
    age = None if facts.newest_heartbeat_ms is None else max(0, now - facts.newest_heartbeat_ms)
    if facts.heartbeats_enabled:
        limit = 3 * facts.heartbeat_interval_ms
        fresh = age is not None and age <= limit
        if not fresh:
            why = ("no heartbeat has arrived on the target" if age is None
                   else f"the newest heartbeat on the target is {age / 1000:.1f}s old (limit {limit / 1000:g}s)")
            if state in UP_STATES or state == "retrying":
                state, reason = "stalled", f"{reason}, but {why}"
            elif state is None:
                state, reason = "down", why
        elif state is None:
            state, reason = "running", f"heartbeats arrive ({facts.engine})"
    elif state is None:
        state, reason = "unknown", "no status records and no heartbeats to tell"
    if unreachable:
        exposure = None
        return FlowStatus(flow=facts.flow, engine=facts.engine, state=state, reason=f"{reason}; " + "; ".join(
            facts.errors), heartbeat_age_ms=None, lag=None, groups=[], exposure_ms=None, rpo_ms=facts.rpo_ms,
            verdict=verdict(exposure, facts.rpo_ms), now_ms=now, daemons=[])
    if facts.errors:
        reason += "; " + "; ".join(facts.errors)
    exposures = [age] if facts.heartbeats_enabled else []
    exposures += [0 if g.current else max(0, now - g.newest_ms) for g in facts.groups]
    exposure = max(exposures) if exposures and None not in exposures else None
    return FlowStatus(flow=facts.flow, engine=facts.engine, state=state, reason=reason, heartbeat_age_ms=age,
                      lag=facts.lag, groups=list(facts.groups), exposure_ms=exposure, rpo_ms=facts.rpo_ms,
                      verdict=verdict(exposure, facts.rpo_ms), now_ms=now, daemons=list(facts.records))


def render_text(statuses: list[FlowStatus]) -> str:
    """Plain aligned text: one block per flow, then a closing line."""
    lines: list[str] = []
    for s in statuses:
        rpo = "no rpo" if s.rpo_ms is None else f"rpo {_secs(s.rpo_ms)}"
        exposure = "unknown" if s.exposure_ms is None else _secs(s.exposure_ms)
        lines.append(f"Flow {s.flow}: {s.state.upper()}  ({s.engine}; {s.reason})")
        lines.append(f"  verdict      {s.verdict} (exposure {exposure}, {rpo})")
        lines.append("  heartbeat    " + ("none" if s.heartbeat_age_ms is None
                                          else f"{_secs(s.heartbeat_age_ms)} old (replication latency at most that)"))
        if s.connect is not None:
            lines.append(f"  connectors   {s.connect.url}" + (" (unreachable)" if s.connect.unreachable else ""))
            width = max((len(c.name) for c in s.connect.connectors), default=0)
            for c in s.connect.connectors:
                tasks = ", ".join(f"{i} {st}" for i, st, _ in c.tasks) or "no tasks"
                trace = first_line(c.trace)
                lines.append(f"    {c.name:<{width}}  {c.state or 'MISSING'} (tasks: {tasks})"
                             + (f": {trace}" if trace else ""))
        if s.lag is None:
            lines.append(f"  lag          unknown ({s.lag_note or 'no position found'})")
        else:
            note = f" ({s.lag_note})" if s.lag_note else ""
            lines.append(f"  lag          {sum(s.lag.values())} records{note}")
            width = max((len(t) for t in s.lag), default=0)
            for topic, n in sorted(s.lag.items()):
                lines.append(f"    {topic:<{width}}  {n}")
        if s.groups:
            lines.append("  checkpoints")
            width = max(len(g.group) for g in s.groups)
            for g in s.groups:
                where = "current" if g.current else ("source offsets unknown" if g.unknown
                                                     else f"{g.behind} of {g.partitions} partitions behind")
                lines.append(f"    {g.group:<{width}}  {_secs(max(0, s.now_ms - g.newest_ms))} old, {where}")
        if s.daemons:
            lines.append("  daemons")
            width = max(len(r.daemon) for r in s.daemons)
            for r in sorted(s.daemons, key=lambda r: r.daemon):
                lines.append(f"    {r.daemon:<{width}}  {daemon_line(r, s.now_ms)}")
        lines.append("")
    bad = [s for s in statuses if not s.healthy]
    lines.append(f"{len(bad)} of {len(statuses)} flows down or over their RPO." if bad
                 else f"All {len(statuses)} flow{'s' if len(statuses) != 1 else ''} healthy.")
    return "\n".join(lines) + "\n"


def daemon_line(r: StatusRecord, now_ms: int) -> str:
    """One daemon's record: its state, the version it runs and what its GitOps reconcile reports."""
    parts = [r.state + (" (stale)" if r.stale(now_ms) else ""), f"version {r.version or 'unknown'}"]
    if r.applier is not None:
        parts.append("applier" if r.applier else "not the applier")
    if r.reconciled_ms is not None:
        parts.append(f"reconciled {_secs(max(0, now_ms - r.reconciled_ms))} ago")
    elif r.applier is not None:
        parts.append("no successful reconcile yet")
    if r.pending is not None:
        counts = [f"{n} {reason}" for reason, n in sorted(r.pending.items()) if n]
        parts.append("pending: " + (", ".join(counts) if counts else "none"))
    return ", ".join(parts)


def _secs(ms: int) -> str:
    return f"{ms / 1000:.1f}s"
