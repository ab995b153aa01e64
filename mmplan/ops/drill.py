"""`mmplan drill`: a disaster-recovery drill on one flow, without touching real traffic.

1. The drill topic (default `mmplan-drill`, one partition) must be one the flow replicates, and the probe group
   (`mmplan-drill-<id>`) one its groups filter selects; otherwise the drill says so and fails. The topic is
   created on the source when missing, and its remote topic on the target through the plan/apply code (the
   flow's plan, limited to that topic).
2. The flow must be up (`mmplan status`'s state); a stopped or dead flow fails the drill at once. One warm-up
   record then waits until it is on the target, so a drill topic the daemon has not picked up yet (it does at
   its next reconcile) does not count as replication latency.
3. `records` marker records (JSON `{"drill", "seq", "ts"}`) are produced on the source, one batch each (so
   offset syncs, written per forwarded batch, cover each one); the probe group consumes the first half with a
   real consumer and commits.
4. The drill waits (bounded by the timeout) until every marker is on the target (replication latency: arrival
   seen by polling minus the marker's timestamp, the worst marker) and a checkpoint of the probe group at its
   committed offset is in the checkpoints topic (checkpoint lag: from the commit until the drill saw it).
5. The probe group fails over with the same code as `mmplan failover`, then a consumer of that group on the
   target reads from its committed offset to the end: markers of the first half read again are re-read,
   markers of the second half not read are missed.
A drill passes when nothing is missed and the latency and checkpoint lag are within the flow's rpo. The probe
group is deleted from both clusters at the end (best effort).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from kafka import TopicPartition

from mmplan.apply.workflow import apply_plan, plan_topology
from mmplan.daemon.checkpoints import select_groups
from mmplan.errors import MmplanError
from mmplan.graph.compile import CompiledFlow
from mmplan.kafka.records import consumer, producer
from mmplan.ops import run as ops
from mmplan.ops.read import Live
from mmplan.state.snapshot import TopicState
from mmplan.topology.loader import LoadedTopology

DEFAULT_TOPIC = "mmplan-drill"
PROBE_PREFIX = ops.PROBE_PREFIX


@dataclass
class DrillResult:
    flow: str
    topic: str
    group: str
    records: int
    consumed: int  # markers the probe group consumed and committed on the source
    latency_ms: int | None = None
    checkpoint_lag_ms: int | None = None
    reread: int | None = None
    missed: int | None = None
    rpo_ms: int | None = None
    failure: str | None = None
    steps: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failure is None and not verdict_failures(self)

    def doc(self) -> dict:
        return {"flow": self.flow, "topic": self.topic, "group": self.group, "records": self.records,
                "consumed_before_failover": self.consumed, "replication_latency_ms": self.latency_ms,
                "checkpoint_lag_ms": self.checkpoint_lag_ms, "reread": self.reread, "missed": self.missed,
                "rpo_ms": self.rpo_ms, "passed": self.passed,
                "failures": ([self.failure] if self.failure else []) + verdict_failures(self), "steps": self.steps}


def verdict_failures(r: DrillResult) -> list[str]:
    """Why a drill that ran to the end fails: records missed, latency or checkpoint lag over the rpo."""
    out = []
    if r.missed:
        out.append(f"{r.missed} record{'s' if r.missed != 1 else ''} missed after the failover")
    if r.rpo_ms is not None:
        for what, value in (("replication latency", r.latency_ms), ("checkpoint lag", r.checkpoint_lag_ms)):
            if value is not None and value > r.rpo_ms:
                out.append(f"{what} {value / 1000:.1f}s is over the rpo of {r.rpo_ms / 1000:g}s")
    return out


def count_after_failover(seen: list[int], consumed: int, records: int) -> tuple[int, int]:
    """(re-read, missed): markers 0..consumed-1 were consumed before the failover, the rest were not."""
    got = set(seen)
    return sum(1 for s in got if s < consumed), sum(1 for s in range(consumed, records) if s not in got)


def render_text(r: DrillResult) -> str:
    lines = [f"Drill of {r.flow} on topic {r.topic} (probe group {r.group}):"]
    lines += [f"  {s}" for s in r.steps]

    def ms(v: int | None) -> str:
        return "-" if v is None else f"{v / 1000:.2f}s"

    lines.append(f"  replication latency  {ms(r.latency_ms)}")
    lines.append(f"  checkpoint lag       {ms(r.checkpoint_lag_ms)}")
    lines.append(f"  re-read              {'-' if r.reread is None else r.reread}")
    lines.append(f"  missed               {'-' if r.missed is None else r.missed}")
    lines.append(f"  rpo                  {'none' if r.rpo_ms is None else ms(r.rpo_ms)}")
    failures = ([r.failure] if r.failure else []) + verdict_failures(r)
    lines.append("Drill passed." if not failures else "Drill FAILED: " + "; ".join(failures))
    return "\n".join(lines) + "\n"


class _Failed(Exception):
    pass


def default_timeout(flow: CompiledFlow) -> float:
    """Long enough for a new drill topic to be picked up (one topic refresh) and a checkpoint round to pass."""
    s = flow.settings
    return s.refresh_topics.interval + 2 * s.checkpoints.interval + 30.0


def run_drill(loaded: LoadedTopology, flow: CompiledFlow, topic: str = DEFAULT_TOPIC, records: int = 20,
              timeout: float | None = None, cluster_timeout: float = 10.0) -> DrillResult:
    """Run the drill (within `timeout`, by default `default_timeout(flow)`); raises MmplanError only for a
    drill that cannot start (filters, unreachable clusters)."""
    timeout = default_timeout(flow) if timeout is None else timeout
    topology = loaded.topology
    group = PROBE_PREFIX + uuid.uuid4().hex[:8]
    consumed = records // 2
    rpo = None if flow.settings.rpo is None else int(flow.settings.rpo * 1000)
    result = DrillResult(flow.name, topic, group, records, consumed, rpo_ms=rpo)
    if not flow.settings.enabled:
        raise MmplanError(f"flow {flow.name} is disabled")
    if not flow.hop.replicates(topic):
        raise MmplanError(f"flow {flow.name} does not replicate the drill topic {topic}",
                          hint="add it to the flow's topics.include, or name a topic it replicates with --topic")
    if not select_groups([group], flow):
        raise MmplanError(f"flow {flow.name} does not checkpoint the probe group {group}",
                          hint=f"let the flow's groups.include select {PROBE_PREFIX}.*")
    if not flow.settings.checkpoints.enabled:
        raise MmplanError(f"flow {flow.name} has checkpoints off: a drill fails over through checkpoints")
    deadline = time.monotonic() + timeout
    remote = flow.policy.remote_topic(topic)
    with Live(topology, cluster_timeout) as live:
        try:
            status = ops.gather_status(live, flow)
            if not status.up:
                raise _Failed(f"flow {flow.name} is {status.state}: {status.reason}")
            result.steps.append(f"flow {status.state} ({status.engine})")
            _ensure_topics(loaded, live, flow, topic, remote, cluster_timeout)
            warm_start, warm = _end(live, flow.target, remote), group + "-warm-up"
            _await_replication(flow, topology, remote, warm_start, warm,
                               _produce(flow, topology, topic, warm, 1, cluster_timeout), deadline, cluster_timeout)
            result.steps.append(f"{remote} on {flow.target} receives the drill topic's records")
            target_start = _end(live, flow.target, remote)
            sent = _produce(flow, topology, topic, group, records, cluster_timeout)
            committed_offset, commit_ms = _consume_and_commit(flow, topology, topic, group, sent, consumed,
                                                              cluster_timeout)
            result.steps.append(f"produced {records} markers at {topic}[0]@{sent[0][0]}..{sent[-1][0]}; "
                                f"{group} consumed {consumed} and committed {committed_offset}")
            result.latency_ms = _await_replication(flow, topology, remote, target_start, group, sent, deadline,
                                                   cluster_timeout)
            result.steps.append(f"all {records} markers replicated to {remote}")
            result.checkpoint_lag_ms = _await_checkpoint(live, flow, group, topic, committed_offset, commit_ms,
                                                         deadline)
            moved = ops.failover(live, flow, group)
            if moved.refused or moved.errors:
                raise _Failed(f"failover refused: {moved.refused}" if moved.refused
                              else f"failover commit failed: {moved.errors}")
            target_offset = next((m.commit for m in moved.moves if m.topic == remote), None)
            result.steps.append(f"failed {group} over to {flow.target}: {remote}[0] at {target_offset}")
            seen = _consume_on_target(flow, topology, remote, group, deadline, cluster_timeout)
            result.reread, result.missed = count_after_failover(seen, consumed, records)
        except _Failed as e:
            result.failure = str(e)
        except MmplanError as e:
            result.failure = e.message
        finally:
            _delete_group(live, flow, group)
    return result


def _ensure_topics(loaded: LoadedTopology, live: Live, flow: CompiledFlow, topic: str, remote: str,
                   timeout: float) -> None:
    source = live.admin(flow.source)
    if topic not in source.partitions_of([topic]):
        rf = min(flow.settings.replication_factor, source.cluster_info()[1])
        error = source.create_topics([TopicState(name=topic, partitions=1, replication_factor=rf, configs={})])
        if error.get(topic) and "already exists" not in error[topic]:
            raise _Failed(f"cannot create the drill topic {topic} on {flow.source}: {error[topic]}")
    if remote in live.admin(flow.target).partitions_of([remote]):
        return
    planned = plan_topology(loaded, (flow.name,), timeout=timeout).plan
    if planned.has_errors:
        errors = [p.message for p in planned.problems if p.severity == "error"]
        raise _Failed(f"cannot plan {remote} on {flow.target}: " + "; ".join(errors))
    mine = [c for c in planned.pending if c.cluster == flow.target and c.topic == remote]
    if not any(c.kind.value == "create_topic" for c in mine):
        raise _Failed(f"the plan of {flow.name} does not create {remote} on {flow.target}")
    outcomes = apply_plan(planned.model_copy(update={"changes": mine, "problems": []}), loaded.topology,
                          timeout=timeout)
    failed = [o for o in outcomes if not o.ok and "already exists" not in (o.error or "")]  # a daemon was first
    if failed:
        raise _Failed(f"cannot create {remote} on {flow.target}: {failed[0].error}")


def _end(live: Live, alias: str, topic: str) -> int:
    return live.admin(alias).end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]


def _produce(flow, topology, topic: str, drill: str, records: int, timeout: float) -> list[tuple[int, int]]:
    """Produce the markers; [(source offset, timestamp ms)] by sequence number."""
    p = producer(flow.source, topology.clusters[flow.source], timeout)
    try:
        out = []
        for seq in range(records):  # one batch each: the offset syncs then cover every marker exactly
            ts = int(time.time() * 1000)
            value = json.dumps({"drill": drill, "seq": seq, "ts": ts}).encode()
            future = p.send(topic, key=drill.encode(), value=value, partition=0, timestamp_ms=ts)
            p.flush(timeout)
            out.append((future.get(timeout).offset, ts))
        return out
    except Exception as e:  # noqa: BLE001 - kafka-python raises several kinds here
        raise _Failed(f"producing the markers on {flow.source} failed: {e}") from None
    finally:
        p.close(timeout)


def _markers(records, drill: str) -> list[tuple[int, int]]:
    """(seq, record offset) of this drill's markers among kafka-python records."""
    out = []
    for r in records:
        try:
            doc = json.loads(r.value)
        except (TypeError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("drill") == drill:
            out.append((int(doc["seq"]), r.offset))
    return out


def _consume_and_commit(flow, topology, topic: str, group: str, sent, consumed: int, timeout: float
                        ) -> tuple[int, int]:
    """The probe group consumes the first `consumed` markers on the source and commits; (offset, when ms)."""
    from kafka.structs import OffsetAndMetadata

    tp = TopicPartition(topic, 0)
    c = consumer(flow.source, topology.clusters[flow.source], timeout, group_id=group)
    try:
        c.assign([tp])
        c.seek(tp, sent[0][0])
        got: list[tuple[int, int]] = []
        stop = time.monotonic() + timeout
        while len(got) < consumed and time.monotonic() < stop:
            for batch in c.poll(timeout_ms=200, max_records=consumed - len(got)).values():
                got += _markers(batch, group)
        if len(got) < consumed:
            raise _Failed(f"the probe group read only {len(got)} of {consumed} markers on {flow.source}")
        offset = max(o for _, o in got) + 1
        c.commit({tp: OffsetAndMetadata(offset, "", -1)})
        return offset, int(time.time() * 1000)
    finally:
        c.close()


def _await_replication(flow, topology, remote: str, start: int, drill: str, sent, deadline: float,
                       timeout: float) -> int:
    tp = TopicPartition(remote, 0)
    c = consumer(flow.target, topology.clusters[flow.target], timeout)
    arrived: dict[int, int] = {}
    try:
        c.assign([tp])
        c.seek(tp, start)
        while len(arrived) < len(sent):
            if time.monotonic() > deadline:
                raise _Failed(f"only {len(arrived)} of {len(sent)} markers reached {remote} on {flow.target} "
                              "within the timeout: is the flow replicating?")
            for batch in c.poll(timeout_ms=100).values():
                now = int(time.time() * 1000)
                for seq, _ in _markers(batch, drill):
                    arrived.setdefault(seq, now)
        return max(arrived[seq] - sent[seq][1] for seq in arrived)
    finally:
        c.close()


def _await_checkpoint(live: Live, flow, group: str, topic: str, offset: int, commit_ms: int, deadline: float) -> int:
    remote = flow.policy.remote_topic(topic)
    while True:
        for t in reversed(live.checkpoints(flow)):
            c = t.checkpoint
            if c.group == group and c.topic == remote and c.partition == 0 and c.upstream_offset >= offset:
                return max(0, int(time.time() * 1000) - commit_ms)
        if time.monotonic() > deadline:
            raise _Failed(f"no checkpoint of {group} at {offset} in {flow.policy.checkpoints_topic()} on "
                          f"{flow.target} within the timeout (checkpoints every "
                          f"{flow.settings.checkpoints.interval:g}s)")
        time.sleep(0.5)


def _consume_on_target(flow, topology, remote: str, group: str, deadline: float, timeout: float) -> list[int]:
    """The probe group's consumer on the target, from its committed offset to the end: the marker seqs read."""
    tp = TopicPartition(remote, 0)
    c = consumer(flow.target, topology.clusters[flow.target], timeout, group_id=group)
    try:
        c.assign([tp])
        committed = c.committed(tp)
        if committed is None:
            raise _Failed(f"the probe group has no committed offset on {remote} after the failover")
        c.seek(tp, committed)
        end = c.end_offsets([tp])[tp]
        seen: list[int] = []
        while c.position(tp) < end:
            if time.monotonic() > deadline:
                raise _Failed(f"reading {remote} on {flow.target} did not reach its end within the timeout")
            for batch in c.poll(timeout_ms=200).values():
                seen += [seq for seq, _ in _markers(batch, group)]
        return seen
    finally:
        c.close()


def _delete_group(live: Live, flow, group: str) -> None:
    for alias in (flow.source, flow.target):
        try:
            live.admin(alias).kafka.delete_consumer_groups([group])
        except Exception:  # noqa: BLE001 - best effort: a group that was never created, a lost connection
            pass
