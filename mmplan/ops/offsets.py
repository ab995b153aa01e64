"""Where a consumer group resumes on the other cluster: offset translation for `offsets translate`, `failover`,
`failback` and `drill`. Pure: the callers read the records and offsets (mmplan.ops.read) and pass them in.

- From checkpoints (the default): for every partition the newest checkpoint of the group in the flow's
  checkpoints topic gives the target topic, partition and offset, which is exactly what MirrorMaker 2's
  `RemoteClusterUtils.translateOffsets` returns (it keeps the last checkpoint read per partition).
- Fresh: where the group's committed source offset is newer than its checkpoint (or has none), the offset syncs
  translate it (`SyncHistory.translate`); with `exact_only` only an exact answer replaces the checkpoint. An
  exact answer for the checkpoint's own source offset also replaces a checkpoint that is further back (MirrorMaker
  2's checkpoints resume after the newest sync it kept, which re-reads).
- Back (failback): a group's offsets on the target, on topics the flow replicated, mapped to source offsets
  through the same offset syncs read the other way (`back_offset`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from mmplan.daemon.mm2_format import Checkpoint
from mmplan.daemon.translate import SyncHistory
from mmplan.graph.policy import ReplicationPolicy


@dataclass(frozen=True)
class TimedCheckpoint:
    checkpoint: Checkpoint
    timestamp: int  # ms: the checkpoint record's timestamp


@dataclass(frozen=True)
class Resume:
    """Where one partition of a group resumes on the other cluster."""

    topic: str  # on the cluster the group moves to
    partition: int
    offset: int
    source_topic: str  # on the cluster the group comes from
    source_offset: int  # the group's committed offset there that `offset` translates
    origin: str  # "checkpoint" | "offset-sync"
    exact: bool | None  # True when the answer is exact, False when it may re-read, None when unknown (checkpoint)
    checkpoint_ms: int | None = None  # the checkpoint's timestamp, for answers from a checkpoint
    metadata: str = ""

    def doc(self, now_ms: int | None = None) -> dict:
        out = {"topic": self.topic, "partition": self.partition, "offset": self.offset,
               "source_topic": self.source_topic, "source_offset": self.source_offset, "from": self.origin,
               "exact": self.exact, "checkpoint_time_ms": self.checkpoint_ms}
        if now_ms is not None:
            out["checkpoint_age_ms"] = None if self.checkpoint_ms is None else max(0, now_ms - self.checkpoint_ms)
        return out


def from_checkpoints(checkpoints: Iterable[TimedCheckpoint], group: str,
                     policy: ReplicationPolicy) -> dict[tuple[str, int], Resume]:
    """(target topic, partition) -> the newest checkpoint of `group`, in the topic's order (as Java does)."""
    out: dict[tuple[str, int], Resume] = {}
    for timed in checkpoints:
        c = timed.checkpoint
        if c.group != group:
            continue
        source_topic = policy.upstream_topic(c.topic) or c.topic
        out[(c.topic, c.partition)] = Resume(c.topic, c.partition, c.downstream_offset, source_topic,
                                             c.upstream_offset, "checkpoint", None, timed.timestamp, c.metadata)
    return out


def freshen(resumes: dict[tuple[str, int], Resume], committed: dict[tuple[str, int], int],
            syncs: dict[tuple[str, int], SyncHistory], policy: ReplicationPolicy,
            exact_only: bool = False) -> dict[tuple[str, int], Resume]:
    """`resumes` with each partition whose committed source offset (source topic, partition) -> offset is newer
    than its checkpoint translated through the offset syncs instead; partitions without a checkpoint are added
    when the syncs translate them. With `exact_only`, only exact translations are used."""
    out = dict(resumes)
    for (source_topic, partition), offset in committed.items():
        if offset < 0:
            continue
        target_topic = policy.remote_topic(source_topic)
        known = out.get((target_topic, partition))
        if known is not None and known.source_offset > offset:
            continue  # the checkpoint is newer than what the source says now (a rewound group): keep it
        history = syncs.get((source_topic, partition))
        if history is None:
            continue
        exact = history.translate(offset, exact_only=True)
        answer = exact if exact is not None else (None if exact_only else history.translate(offset))
        if answer is None:
            continue
        if known is not None:
            newer = offset > known.source_offset and answer >= known.offset
            closer = offset == known.source_offset and exact is not None and answer > known.offset
            if not (newer or closer):
                continue
        out[(target_topic, partition)] = Resume(target_topic, partition, answer, source_topic, offset,
                                                "offset-sync", exact is not None, None,
                                                known.metadata if known else "")
    return out


def back_offset(history: SyncHistory, downstream: int) -> tuple[int, bool] | None:
    """The source offset to resume from for a target-side committed `downstream` offset, and whether it is exact;
    None when no sync is at or below it. Between two syncs with equal spans the distance carries over; otherwise
    the answer is the newest sync's upstream offset plus one (never past a record not yet consumed on the target,
    so it may re-read)."""
    syncs = sorted(history.syncs(), key=lambda s: s.downstream)
    i = bisect.bisect_right([s.downstream for s in syncs], downstream) - 1
    if i < 0:
        return None
    low = syncs[i]
    if low.downstream == downstream:
        return low.upstream, True
    if i + 1 < len(syncs):
        high = syncs[i + 1]
        if high.upstream - low.upstream == high.downstream - low.downstream:
            return low.upstream + (downstream - low.downstream), True
    elif downstream == low.downstream + 1:
        return low.upstream + 1, True
    return low.upstream + 1, False


def backwards(group_offsets: dict[tuple[str, int], int], syncs: dict[tuple[str, int], SyncHistory],
              policy: ReplicationPolicy) -> tuple[dict[tuple[str, int], Resume], list[tuple[str, int]]]:
    """Failback: the group's committed offsets on the flow's target, for topics the flow replicated
    (`policy.topic_source(topic) == policy.source_alias`), as offsets of the original topics on the source.
    Returns (source topic, partition) -> Resume, and the target partitions that could not be translated."""
    out: dict[tuple[str, int], Resume] = {}
    missing: list[tuple[str, int]] = []
    for (topic, partition), offset in sorted(group_offsets.items()):
        if policy.topic_source(topic) != policy.source_alias:
            continue
        source_topic = policy.upstream_topic(topic) or topic
        history = syncs.get((source_topic, partition))
        answer = back_offset(history, offset) if history else None
        if answer is None:
            missing.append((topic, partition))
            continue
        out[(source_topic, partition)] = Resume(source_topic, partition, answer[0], topic, offset, "offset-sync",
                                                answer[1])
    return out, missing

