"""Checkpoints and group offset sync, one worker thread per flow.

**Offset syncs.** The worker tails the flow's offset-syncs topic on the SOURCE (`policy.offset_syncs_topic
(target)`, written by `FlowRunner` for every forwarded batch) from its start, read_committed, with an assigned
(not subscribed) consumer, into one `translate.SyncHistory` per source partition. Nothing is translated before
that read has reached the end offsets seen when it started (a partial history would give older answers). The
topic is compacted (one sync per source partition survives cleaning), so a daemon that starts later knows fewer
syncs for old positions than one that ran all along: a group far behind may then get MirrorMaker 2's `down + 1`
answer (records re-read, never skipped) or none, until it moves past a sync the daemon has read.

**Checkpoints** (`checkpoints: {enabled, interval}`, default 60 s). Every interval: the source's consumer groups
selected by the flow's `groups` filter (include/exclude regexes, `re.fullmatch`; never the flow's own group
`<source>-><target>`), their committed offsets on topics the flow replicates (`Hop.replicates`), translated
(`SyncHistory.translate`: exact between the syncs of consecutive batches, MirrorMaker 2's `down + 1` rule
elsewhere), written to `policy.checkpoints_topic()` on the TARGET, partition 0, in MirrorMaker 2's format
(key: group, REMOTE topic, partition; value: version 0, upstream offset, downstream offset, metadata ""), with the
record timestamp = when that group's offsets were listed. A partition without a translation (no sync at or below
the group's offset) gets no checkpoint. What is written each interval, per group:

- every checkpoint whose (upstream, downstream) differs from the last one this worker wrote, and
- when none of the group's changed, one unchanged checkpoint (a different partition each time, in turn), so
  **every selected group with a checkpoint gets at least one checkpoint record per interval**: a reader judges
  a group's freshness by the timestamp of its newest checkpoint record (older than two intervals: checkpointing
  is behind or down). Unchanged checkpoints are otherwise not rewritten: the compacted topic keeps them.

**Group offset sync** (`sync_group_offsets: {enabled, interval}`, default off, 60 s). Every interval the same
translations are committed to the same group on the TARGET, on the remote topic partitions, only while that group
has no members there (state Empty or Dead), and only the partitions where the translation is ahead of what the
target group has committed: a target group is never moved backwards. The metrics count per group and round:
committed / current / active (refused) / failed. A sync due right after a checkpoint round uses that round's
translations instead of listing the groups again.

**Several daemons** running one flow each do all of this: the translations come from the same offset syncs and
the same committed offsets, so their checkpoints agree (up to a few seconds of timing) and readers take the
newest record per key; a group offset sync re-checks the target's committed offsets right before committing, so
a daemon with a slightly older view skips the partitions another one already moved on. (The window between
that read and the commit is milliseconds; losing that race can only move a target group back to an older,
still valid translation: records re-read, never skipped.)

Errors (an unreachable cluster, a missing permission) are logged once per episode naming the cluster, counted in
`mmplan_errors_total{kind="checkpoints"|"group_offset_sync"|"offset_syncs_read"}`, and retried at the next
interval. Replication never waits for any of this.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kafka import TopicPartition

from mmplan.daemon.metrics import Metrics
from mmplan.daemon.mm2_format import Checkpoint, OffsetSync
from mmplan.daemon.periodic import Episode
from mmplan.daemon.translate import Sync, SyncHistory
from mmplan.graph.compile import CompiledFlow
from mmplan.kafka.admin import Admin
from mmplan.kafka.records import consumer, producer
from mmplan.topology.models import Cluster

POLL_S = 0.5
RETRY_S = 5.0  # a failed connection of the offset-syncs reader is retried this often at most
MAX_BLOCK_S = 5.0
EMPTY_STATES = ("Empty", "Dead")
ACTIVE_ERRORS = ("UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "GROUP_NOT_EMPTY",
                 "STALE_MEMBER_EPOCH")


# --- the pure parts -------------------------------------------------------------------------------------------

def select_groups(groups: Iterable[str], flow: CompiledFlow) -> list[str]:
    """The groups the flow checkpoints: its `groups` filter (fullmatch), never its own `<source>-><target>`."""
    include = [re.compile(p) for p in flow.settings.groups.include]
    exclude = [re.compile(p) for p in flow.settings.groups.exclude]
    return sorted(g for g in set(groups)
                  if g != flow.name and any(p.fullmatch(g) for p in include)
                  and not any(p.fullmatch(g) for p in exclude))


def translate_group(group: str, offsets: Mapping[TopicPartition, int], histories: Mapping[tuple[str, int],
                    SyncHistory], flow: CompiledFlow) -> list[Checkpoint]:
    """The checkpoints of `group` now: its committed source offsets on replicated topics that translate."""
    out = []
    for tp, offset in sorted(offsets.items()):
        if offset < 0 or not flow.hop.replicates(tp.topic):
            continue
        history = histories.get((tp.topic, tp.partition))
        down = history.translate(offset) if history is not None else None
        if down is None or down < 0:
            continue
        out.append(Checkpoint(group, flow.policy.remote_topic(tp.topic), tp.partition, offset, down))
    return out


def checkpoint_key(c: Checkpoint) -> tuple[str, int]:
    return c.topic, c.partition


def due_checkpoints(current: list[Checkpoint], written: Mapping[tuple[str, int], tuple[int, int]],
                    turn: int) -> list[Checkpoint]:
    """Of one group's checkpoints now, those to write: the changed ones; when none changed, one unchanged
    one (`turn` picks which), so each group gets a fresh checkpoint record every interval."""
    changed = [c for c in current
               if written.get(checkpoint_key(c)) != (c.upstream_offset, c.downstream_offset)]
    if changed or not current:
        return changed
    return [current[turn % len(current)]]


def offsets_to_commit(translated: Mapping[TopicPartition, int],
                      committed: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The partitions where the translation is ahead of the target group's committed offset: never backwards."""
    return {tp: offset for tp, offset in translated.items() if offset > committed.get(tp, -1)}


def may_sync(state: str, members: int) -> bool:
    """A target group may be written while nobody consumes with it there."""
    return members == 0 and state in EMPTY_STATES


# --- the worker -----------------------------------------------------------------------------------------------

@dataclass
class Round:
    """The translations of the last checkpoint round (monotonic time): a group offset sync due right after
    it uses them instead of listing every group again."""

    at: float
    groups: dict[str, list[Checkpoint]]


class CheckpointWorker:
    def __init__(self, flow: CompiledFlow, source: Cluster, target: Cluster, metrics: Metrics | None,
                 log: logging.Logger, timeout: float = 10.0) -> None:
        self.flow = flow
        self.source, self.target = source, target
        self.metrics = metrics
        self.log = log
        self.timeout = timeout
        s = flow.settings
        self.checkpoints_on = s.checkpoints.enabled
        self.sync_on = s.sync_group_offsets.enabled
        self.checkpoint_interval = s.checkpoints.interval
        self.sync_interval = s.sync_group_offsets.interval
        self.syncs_topic = flow.policy.offset_syncs_topic(flow.target)
        self.checkpoints_topic = flow.policy.checkpoints_topic()
        self.histories: dict[tuple[str, int], SyncHistory] = {}
        self.written: dict[str, dict[tuple[str, int], tuple[int, int]]] = {}
        self.last_round: Round | None = None
        self.turns: dict[str, int] = {}
        self.caught_up = False
        self._ends: dict[TopicPartition, int] | None = None
        self._consumer = None
        self._consumer_retry = 0.0
        self._src_admin: Admin | None = None
        self._dst_admin: Admin | None = None
        self._producer = None
        self.read_episode = Episode(log, metrics, flow.name, "offset_syncs_read")
        self.cp_episode = Episode(log, metrics, flow.name, "checkpoints")
        self.sync_episode = Episode(log, metrics, flow.name, "group_offset_sync")

    @property
    def active(self) -> bool:
        return self.checkpoints_on or self.sync_on

    def run(self, stop: threading.Event) -> None:
        next_cp = time.monotonic()
        next_sync = time.monotonic() + (self.sync_interval if self.checkpoints_on else 0)
        try:
            while not stop.is_set():
                self.tail(stop)
                now = time.monotonic()
                if not self.caught_up or stop.is_set():
                    continue
                if self.checkpoints_on and now >= next_cp:
                    self.checkpoint_round()
                    next_cp = max(next_cp + self.checkpoint_interval, time.monotonic())
                if self.sync_on and now >= next_sync and not stop.is_set():
                    self.sync_round()
                    next_sync = max(next_sync + self.sync_interval, time.monotonic())
        finally:
            self.close()

    # -- offset syncs ---------------------------------------------------------------------------------------

    def tail(self, stop: threading.Event | None = None, wait: float = POLL_S) -> int:
        """Read the offset syncs that arrived (waiting up to `wait`); returns how many."""
        source = self.flow.source
        if self._consumer is None:
            if time.monotonic() < self._consumer_retry:
                (stop.wait(wait) if stop else time.sleep(wait))
                return 0
            try:
                self._consumer = self._open_reader()
            except Exception as e:
                self._consumer_retry = time.monotonic() + RETRY_S
                self.read_episode.failed(source, f"reading offset syncs from {self.syncs_topic}", e)
                self._close_reader()
                return 0
            if self._consumer is None:  # the topic is not there (yet)
                self._consumer_retry = time.monotonic() + RETRY_S
                return 0
        try:
            found = self._consumer.poll(timeout_ms=int(wait * 1000))
            n = 0
            for records in found.values():
                for r in records:
                    try:
                        sync = OffsetSync.decode(r.key or b"", r.value or b"")
                    except Exception:  # not a sync (written by something else): skipped, as MirrorMaker 2 does
                        continue
                    self.histories.setdefault((sync.topic, sync.partition), SyncHistory()).add(
                        Sync(sync.upstream_offset, sync.downstream_offset))
                    n += 1
            if n and self.metrics is not None:
                self.metrics.offset_syncs_read.labels(self.flow.name).inc(n)
            if not self.caught_up and self._ends is not None:
                self.caught_up = all(self._consumer.position(tp) >= end for tp, end in self._ends.items())
                if self.caught_up:
                    self.log.debug("offset syncs read to their end: %d partition(s) with syncs",
                                   len(self.histories))
            self.read_episode.ok()
            return n
        except Exception as e:
            self.read_episode.failed(source, f"reading offset syncs from {self.syncs_topic}", e)
            self._consumer_retry = time.monotonic() + RETRY_S
            self._close_reader()  # re-read from the start: the history is rebuilt
            return 0

    def _open_reader(self):
        c = consumer(self.flow.source, self.source, self.timeout, auto_offset_reset="earliest",
                     fetch_max_wait_ms=int(POLL_S * 1000), allow_auto_create_topics=False)
        try:
            partitions = c.partitions_for_topic(self.syncs_topic)
            if not partitions:
                c.close()
                return None
            tps = [TopicPartition(self.syncs_topic, p) for p in sorted(partitions)]
            c.assign(tps)
            c.seek_to_beginning(*tps)
            self._ends = c.end_offsets(tps, timeout_ms=int(self.timeout * 1000))
            self.histories = {}
            self.caught_up = False
            return c
        except Exception:
            c.close()
            raise

    def _close_reader(self) -> None:
        c, self._consumer = self._consumer, None
        if c is not None:
            try:
                c.close(autocommit=False, timeout_ms=1000)
            except Exception:
                pass

    # -- checkpoints ----------------------------------------------------------------------------------------

    def translations(self) -> dict[str, list[Checkpoint]]:
        """Every selected source group's checkpoints now (groups without any are left out)."""
        if self._src_admin is None:
            self._src_admin = Admin.connect(self.flow.source, self.source, self.timeout)
        admin = self._src_admin
        out = {}
        for group in select_groups(admin.groups(), self.flow):
            checkpoints = translate_group(group, admin.group_offsets(group), self.histories, self.flow)
            if checkpoints:
                out[group] = checkpoints
        return out

    def checkpoint_round(self) -> int:
        """List, translate, write what is due; returns the records the target acknowledged."""
        source, target = self.flow.source, self.flow.target
        try:
            listed_ms = int(time.time() * 1000)
            groups = self.translations()
        except Exception as e:
            self.cp_episode.failed(source, "listing consumer groups and their offsets", e)
            self._drop_admin("_src_admin")
            return 0
        self.last_round = Round(time.monotonic(), groups)
        self.written = {g: w for g, w in self.written.items() if g in groups}  # groups gone: forgotten
        self.turns = {g: t for g, t in self.turns.items() if g in groups}
        due = {}
        for group, checkpoints in groups.items():
            turn = self.turns.get(group, 0)
            self.turns[group] = turn + 1
            due[group] = due_checkpoints(checkpoints, self.written.get(group, {}), turn)
        records = [c for cs in due.values() for c in cs]
        try:
            if records:
                self._write(records, listed_ms)
        except Exception as e:
            self.cp_episode.failed(target, f"writing checkpoints to {self.checkpoints_topic}", e)
            self._close_producer()
            return 0
        for group, checkpoints in due.items():
            mine = self.written.setdefault(group, {})
            for c in checkpoints:
                mine[checkpoint_key(c)] = (c.upstream_offset, c.downstream_offset)
        self.cp_episode.ok()
        if self.metrics is not None:
            self.metrics.checkpoint_groups.labels(self.flow.name).set(len(groups))
            if records:
                self.metrics.checkpointed(self.flow.name, len(records), listed_ms)
        if records:
            self.log.debug("wrote %d checkpoint(s) for %d group(s)", len(records), len(groups))
        return len(records)

    def _write(self, records: list[Checkpoint], timestamp_ms: int) -> None:
        """Write to partition 0 of the checkpoints topic and wait for the target to acknowledge every record."""
        if self._producer is None:
            self._producer = producer(self.flow.target, self.target, self.timeout, linger_ms=5,
                                      max_block_ms=int(MAX_BLOCK_S * 1000), allow_auto_create_topics=False)
        futures = [self._producer.send(self.checkpoints_topic, key=c.key(), value=c.value(), partition=0,
                                       timestamp_ms=timestamp_ms) for c in records]
        self._producer.flush(timeout=self.timeout)
        for f in futures:
            f.get(timeout=0)  # raises the error of a record the target refused

    # -- group offset sync ----------------------------------------------------------------------------------

    def sync_round(self) -> dict[str, str]:
        """Commit the translations to the idle target groups; group -> committed/current/active/failed."""
        source, target = self.flow.source, self.flow.target
        last = self.last_round
        if last is not None and time.monotonic() - last.at < self.sync_interval / 2:
            groups = last.groups
        else:
            try:
                groups = self.translations()
            except Exception as e:
                self.sync_episode.failed(source, "listing consumer groups and their offsets", e)
                self._drop_admin("_src_admin")
                return {}
        results: dict[str, str] = {}
        try:
            if self._dst_admin is None:
                self._dst_admin = Admin.connect(target, self.target, self.timeout)
            admin = self._dst_admin
            for group, checkpoints in groups.items():
                results[group] = self._sync_group(admin, group, checkpoints)
        except Exception as e:
            self.sync_episode.failed(target, "syncing group offsets", e)
            self._drop_admin("_dst_admin")
            for group in groups.keys() - results.keys():
                results[group] = "failed"
        else:
            if "failed" not in results.values():
                self.sync_episode.ok()
        if self.metrics is not None:
            for result in results.values():
                self.metrics.group_sync(self.flow.name, result)
        return results

    def _sync_group(self, admin: Admin, group: str, checkpoints: list[Checkpoint]) -> str:
        state, members = admin.group_members(group)
        if not may_sync(state, members):
            self.log.debug("group %s is active on %s (%s, %d member(s)): offsets not synced", group,
                           self.flow.target, state, members)
            return "active"
        translated = {TopicPartition(c.topic, c.partition): c.downstream_offset for c in checkpoints}
        wanted = offsets_to_commit(translated, admin.group_offsets(group))
        if not wanted:
            return "current"
        errors = {tp: e for tp, e in admin.commit_group_offsets(group, wanted).items() if e}
        if not errors:
            self.log.debug("group %s: committed %d offset(s) on %s", group, len(wanted), self.flow.target)
            return "committed"
        first = next(iter(errors.values()))
        if any(name in e for e in errors.values() for name in ACTIVE_ERRORS):
            return "active"  # a consumer joined between the check and the commit: the broker refused
        self.sync_episode.failed(self.flow.target, f"committing the offsets of group {group}", first)
        return "failed"

    # -- clients --------------------------------------------------------------------------------------------

    def _drop_admin(self, name: str) -> None:
        admin = getattr(self, name)
        setattr(self, name, None)
        if admin is not None:
            try:
                admin.close()
            except Exception:
                pass

    def _close_producer(self) -> None:
        p, self._producer = self._producer, None
        if p is not None:
            try:
                p.close(timeout=1)
            except Exception:
                pass

    def close(self) -> None:
        self._close_reader()
        self._close_producer()
        self._drop_admin("_src_admin")
        self._drop_admin("_dst_admin")
