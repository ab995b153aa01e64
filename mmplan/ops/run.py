"""The ops commands' I/O: read through `Live`, compute with the pure modules, commit through the client layer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kafka import TopicPartition

from mmplan.errors import MmplanError
from mmplan.graph.compile import CompiledFlow, flow_name
from mmplan.ops import failover as fo
from mmplan.ops.offsets import Resume, backwards, freshen, from_checkpoints
from mmplan.ops.read import Live
from mmplan.ops.status import FlowFacts, FlowStatus, GroupCheckpoints, flow_status

PROBE_PREFIX = "mmplan-drill-"  # the probe groups of `mmplan drill`


def now_ms() -> int:
    return int(time.time() * 1000)


# -- status ------------------------------------------------------------------------------------------------------


def status_of(live: Live, flow: CompiledFlow) -> FlowStatus:
    """`gather_status`, or an `unreachable` status when the target cannot be read (the command goes on)."""
    try:
        return gather_status(live, flow)
    except MmplanError as e:
        where = f"{e.where}: " if e.where else ""
        return flow_status(FlowFacts(flow=flow.name, now_ms=now_ms(), engine="unknown",
                                     heartbeats_enabled=False, rpo_ms=None if flow.settings.rpo is None
                                     else int(flow.settings.rpo * 1000),
                                     errors=[f"cannot read the target {flow.target}: {where}{e.message}"]),
                           unreachable=True)


def gather_status(live: Live, flow: CompiledFlow) -> FlowStatus:
    """One flow's status: target-side facts first (they matter most when the source is gone), then the source."""
    s = flow.settings
    errors: list[str] = []
    records = live.status_records(flow)
    beats = live.heartbeats(flow) if s.heartbeats.enabled else []
    newest_beat = max((hb.timestamp for hb, _ in beats), default=None)
    checkpoints = live.checkpoints(flow)
    positions: dict[tuple[str, int], int] | None = None
    engine = "mmplan" if records else "unknown"
    if not records:
        positions = live.connect_positions(flow)
        if positions is not None:
            engine = "mirrormaker2"
    lag = None
    groups: list[GroupCheckpoints] = []
    try:
        topics = live.replicated_topics(flow)
        ends = live.end_offsets(flow.source, topics)
        if engine != "mirrormaker2":
            positions = live.group_offsets(flow.source, flow_name(flow.source, flow.target))
        if positions is not None and (positions or engine != "unknown"):
            lag = {}
            for (topic, partition), end in ends.items():
                lag[topic] = lag.get(topic, 0) + max(0, end - positions.get((topic, partition), 0))
        source_readable = True
    except MmplanError as e:
        errors.append(f"source {flow.source} unreadable: {e.message}")
        source_readable = False
    by_group: dict[str, dict[tuple[str, int], Resume]] = {}
    # probe groups of past drills (`mmplan drill` deletes them; their checkpoints stay in the compacted topic)
    for name in sorted({t.checkpoint.group for t in checkpoints if not t.checkpoint.group.startswith(PROBE_PREFIX)}):
        by_group[name] = from_checkpoints(checkpoints, name, flow.policy)
    for name, resumes in by_group.items():
        newest = max(r.checkpoint_ms or 0 for r in resumes.values())
        committed = None
        if source_readable:
            try:
                committed = live.group_offsets(flow.source, name)
            except MmplanError:
                committed = None
        behind = 0
        if committed is not None:
            for r in resumes.values():
                if committed.get((r.source_topic, r.partition), -1) > r.source_offset:
                    behind += 1
        groups.append(GroupCheckpoints(name, newest, len(resumes), behind, unknown=committed is None))
    facts = FlowFacts(flow=flow.name, now_ms=now_ms(), engine=engine, records=records,
                      heartbeats_enabled=s.heartbeats.enabled,
                      heartbeat_interval_ms=int(s.heartbeats.interval * 1000), newest_heartbeat_ms=newest_beat,
                      rpo_ms=None if s.rpo is None else int(s.rpo * 1000), lag=lag, groups=groups, errors=errors)
    return flow_status(facts)


# -- translate ---------------------------------------------------------------------------------------------------


@dataclass
class Translation:
    flow: CompiledFlow
    group: str
    mode: str  # "checkpoints" | "fresh"
    resumes: dict[tuple[str, int], Resume]
    source_committed: dict[tuple[str, int], int] | None  # None: not read (checkpoints mode) or unreadable
    notes: list[str] = field(default_factory=list)
    now_ms: int = 0

    def doc(self) -> dict:
        return {"flow": self.flow.name, "group": self.group, "mode": self.mode, "cluster": self.flow.target,
                "partitions": [r.doc(self.now_ms) for _, r in sorted(self.resumes.items())], "notes": self.notes}


def translate(live: Live, flow: CompiledFlow, group: str, fresh: bool = False, exact_only: bool = False
              ) -> Translation:
    """The group's resume offsets on the flow's target: from checkpoints, and with `fresh` from the offset syncs
    too where the group's committed source offsets are newer (only exact ones with `exact_only`)."""
    resumes = from_checkpoints(live.checkpoints(flow), group, flow.policy)
    out = Translation(flow, group, "fresh" if fresh else "checkpoints", resumes, None, now_ms=now_ms())
    if fresh:
        try:
            committed = live.group_offsets(flow.source, group)
            syncs = live.offset_syncs(flow)
        except MmplanError as e:
            out.notes.append(f"checkpoints only: the source {flow.source} cannot be read ({e.message})")
            return out
        committed = {k: v for k, v in committed.items() if flow.hop.replicates(k[0])}
        out.source_committed = committed
        out.resumes = freshen(resumes, committed, syncs, flow.policy, exact_only=exact_only)
        for (topic, partition), offset in sorted(committed.items()):
            key = (flow.policy.remote_topic(topic), partition)
            if key not in out.resumes:
                out.notes.append(f"{topic}[{partition}] at {offset}: no checkpoint and no offset sync translates it")
    return out


# -- failover and failback ---------------------------------------------------------------------------------------


@dataclass
class GroupMove:
    """The outcome of `failover` or `failback`: the partitions, what the application must change, a refusal."""

    title: str
    cluster: str
    moves: list[fo.Move]
    changes: list[tuple[str, str]]
    notes: list[str]
    refused: str | None
    done: bool
    errors: dict[str, str]

    def doc(self) -> dict:
        return {"cluster": self.cluster, "done": self.done, "refused": self.refused,
                "partitions": [m.doc() for m in self.moves], "errors": self.errors,
                "application": [{"setting": k, "change": v} for k, v in self.changes], "notes": self.notes}


def failover(live: Live, flow: CompiledFlow, group: str, dry_run: bool = False, allow_rewind: bool = False,
             force: bool = False) -> GroupMove:
    """Commit the group's freshest exact translated offsets on the flow's target (see mmplan.ops.failover)."""
    t = translate(live, flow, group, fresh=True, exact_only=True)
    target = flow.target
    members = live.admin(target).group_members(group)
    current = live.group_offsets(target, group)
    moves = fo.plan_moves(t.resumes, current, allow_rewind)
    rpo = None if flow.settings.rpo is None else int(flow.settings.rpo * 1000)
    exposure = fo.exposure_ms(t.resumes, t.source_committed, t.now_ms)
    refused = fo.refusal(group, target, t.resumes, members, exposure, rpo, force)
    if not t.resumes:
        refused = (f"no checkpoints of group {group} in {flow.policy.checkpoints_topic()} on {target}"
                   + ("" if t.source_committed is None else " and no offset sync translates its source offsets")
                   + ": is the group selected by the flow's groups filter, and has a checkpoint interval passed?")
    topology = live.topology
    changes = fo.app_changes(topology.clusters[flow.source].bootstrap_servers,
                             topology.clusters[target].bootstrap_servers, moves, group)
    result = GroupMove(f"Failover of group {group} to {target} ({flow.name}):", target, moves, changes, t.notes,
                  refused, False, {})
    if refused is None and not dry_run:
        result.errors = _commit(live, target, group, moves)
        result.done = not result.errors
    return result


def failback(live: Live, flow: CompiledFlow, group: str, dry_run: bool = False,
             allow_rewind: bool = False) -> GroupMove:
    """The return trip of `flow`: the group's offsets on the flow's target, on the topics the flow replicated,
    translated back through the flow's offset syncs and committed on its source for the original topics."""
    source, target = flow.source, flow.target
    on_target = live.group_offsets(target, group)
    syncs = live.offset_syncs(flow)
    resumes, missing = backwards(on_target, syncs, flow.policy)
    notes = [f"{t}[{p}]: no offset sync at or below the group's offset; not translated" for t, p in missing]
    local = sorted({t for t, _ in on_target if flow.policy.topic_source(t) != source})
    if local:
        notes.append(f"topics local to {target} ({', '.join(local)}) are not part of this flow's return trip: "
                     f"replicate them with a flow {target}->{source} and run `mmplan failover --flow "
                     f"{target}->{source} --group {group}`")
    members = live.admin(source).group_members(group)
    current = live.group_offsets(source, group)
    moves = fo.plan_moves(resumes, current, allow_rewind)
    refused = fo.refusal(group, source, resumes, members, 0, None, True)
    if not resumes:
        refused = (f"group {group} has no committed offsets on {target} for topics replicated from {source}"
                   if not missing else f"no offset sync translates the offsets of group {group} back to {source}")
    topology = live.topology
    changes = fo.app_changes(topology.clusters[target].bootstrap_servers,
                             topology.clusters[source].bootstrap_servers, moves, group)
    result = GroupMove(f"Failback of group {group} to {source} (return trip of {flow.name}):", source, moves, changes,
                  notes, refused, False, {})
    if refused is None and not dry_run:
        result.errors = _commit(live, source, group, moves)
        result.done = not result.errors
    return result


def _commit(live: Live, alias: str, group: str, moves: list[fo.Move]) -> dict[str, str]:
    offsets = {TopicPartition(m.topic, m.partition): m.commit for m in moves if m.commit is not None}
    if not offsets:
        return {}
    answers = live.admin(alias).commit_group_offsets(group, offsets, metadata="mmplan failover")
    return {f"{tp.topic}[{tp.partition}]": error for tp, error in answers.items() if error}
