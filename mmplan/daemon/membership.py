"""Group membership of a flow: which source partitions this runner replicates, and where its progress is kept.

A regular `KafkaConsumer` in group `<source>-><target>` on the source cluster, owned by a thread of its own. It
never hands out records (every assigned partition is paused); it only takes part in rebalances, reads the
group's committed offsets of newly assigned partitions, and commits the positions the engine reports.

Why a thread: kafka-python 3.0.12's `poll(timeout_ms=0)` never completes a rebalance (a JoinGroup task that
finished between two polls is replaced by a new one before its result is used), so the consumer is polled with a
real timeout, back to back, on its own thread. The consumer is only ever touched from that thread.
"""

from __future__ import annotations

import collections
import logging
import threading

import kafka.errors as Errors
from kafka import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata, TopicPartition

POLL_MS = 300
# A group leader whose metadata lacks a subscribed topic (created a moment before) assigns none of its
# partitions, and nothing rebalances until a metadata refresh shows the topic: refresh at least this often, so
# that costs seconds, not a whole topic-refresh interval.
METADATA_REFRESH_MAX = 5.0


class _Listener(ConsumerRebalanceListener):
    """Runs on the consumer's IO thread. Before partitions go (still in the old generation), it commits the
    positions the engine reached for them, so their next owner starts there and repeats nothing written."""

    def __init__(self, membership: Membership, consumer: KafkaConsumer, changes: collections.deque) -> None:
        self.membership = membership
        self.consumer = consumer
        self.changes = changes

    async def on_partitions_revoked(self, revoked):
        m = self.membership
        positions = {tp: m.positions.get(tp) for tp in revoked}
        offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in positions.items()
                   if o is not None and o != m._committed.get(tp)}
        if offsets:
            try:
                await self.consumer._coordinator._commit_offsets_sync_async(offsets, timeout_ms=5000)
                for tp, meta in offsets.items():
                    m._committed[tp] = meta.offset
            except Exception as e:  # noqa: BLE001 - the next owner starts at the previous commit
                m.log.info("group %s: commit on revocation not done (%s)", m.group, e)
        self.changes.append(("revoked", set(revoked)))

    def on_partitions_assigned(self, assigned):
        self.changes.append(("assigned", set(assigned)))

    def on_partitions_lost(self, lost):
        self.changes.append(("revoked", set(lost)))


class Membership:
    """Runs the membership consumer; the engine reads `events` and calls `subscribe`, `commit`, `close`.

    Events (appended in order): ("assigned", {tp: start offset}) with the group's committed offset or, when there
    is none, the earliest offset; ("revoked", {tp, ...}); ("earliest", {tp: offset}) answering `earliest()`;
    ("error", exception) for an error the engine should act on (e.g. authorization).
    """

    def __init__(self, config: dict, group: str, refresh_s: float, log: logging.Logger) -> None:
        self.config = dict(config)
        self.config.pop("bootstrap_timeout_ms", None)
        self.group = group
        self.refresh_ms = int(max(1.0, min(refresh_s, METADATA_REFRESH_MAX)) * 1000)
        self.log = log
        self.events: collections.deque = collections.deque()
        self.positions: dict[TopicPartition, int] = {}  # written by the engine: acknowledged source positions
        self._lock = threading.Lock()
        self._topics: set[str] | None = None
        self._commit: dict[TopicPartition, int] = {}
        self._earliest: set[TopicPartition] = set()
        self._committed: dict[TopicPartition, int] = {}
        self._stop = threading.Event()
        self._final_done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mmplan-group-{group}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- the engine's side --------------------------------------------------------------------------------------

    def subscribe(self, topics: set[str]) -> None:
        with self._lock:
            self._topics = set(topics)

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit these positions soon (the newest call wins per partition)."""
        with self._lock:
            self._commit.update(offsets)

    def forget(self, tps) -> None:
        """Drop pending commits of partitions no longer owned."""
        with self._lock:
            for tp in tps:
                self._commit.pop(tp, None)

    def earliest(self, tps) -> None:
        with self._lock:
            self._earliest.update(tps)

    def close(self, final: dict[TopicPartition, int], timeout: float = 10.0) -> None:
        """Commit `final`, leave the group and stop the thread (within about `timeout` seconds)."""
        self.commit(final)
        self._stop.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the thread ---------------------------------------------------------------------------------------------

    def _run(self) -> None:
        consumer = None
        changes: collections.deque = collections.deque()
        try:
            consumer = KafkaConsumer(
                **self.config, group_id=self.group, enable_auto_commit=False, auto_offset_reset="earliest",
                isolation_level="read_committed", allow_auto_create_topics=False,
                metadata_max_age_ms=self.refresh_ms, session_timeout_ms=10000, heartbeat_interval_ms=1000,
                max_poll_interval_ms=300000, fetch_max_bytes=1024, max_partition_fetch_bytes=1024)
            subscribed: set[str] | None = None
            while not self._stop.is_set():
                with self._lock:
                    topics = self._topics
                if topics is not None and topics != subscribed:
                    subscribed = topics
                    if topics:
                        consumer.subscribe(sorted(topics), listener=_Listener(self, consumer, changes))
                    else:
                        consumer.unsubscribe()
                        changes.append(("revoked", set(self._committed)))
                consumer.poll(timeout_ms=POLL_MS if subscribed else 50)
                self._changes(consumer, changes)
                self._do_commit(consumer)
                self._do_earliest(consumer)
            self._do_commit(consumer)
        except Exception as e:  # noqa: BLE001 - reported to the engine
            self.log.warning("group %s: %s", self.group, e)
            self.events.append(("error", e))
        finally:
            if consumer is not None:
                try:
                    consumer.close(autocommit=False, timeout_ms=5000)
                except Exception:  # noqa: BLE001 - best-effort
                    pass

    def _changes(self, consumer: KafkaConsumer, changes: collections.deque) -> None:
        while changes:
            kind, tps = changes.popleft()
            if kind == "revoked":
                self.forget(tps)
                for tp in tps:
                    self._committed.pop(tp, None)
                    self.positions.pop(tp, None)
                self.events.append(("revoked", tps))
                continue
            tps = {tp for tp in tps if tp in consumer.assignment()}
            if not tps:
                continue
            consumer.pause(*tps)
            committed = consumer._coordinator.fetch_committed_offsets(tps, timeout_ms=10000)
            starts = {tp: m.offset for tp, m in committed.items() if m is not None and m.offset >= 0}
            missing = [tp for tp in tps if tp not in starts]
            if missing:
                starts.update(consumer.beginning_offsets(missing, timeout_ms=10000))
            for tp, m in committed.items():
                if m is not None and m.offset >= 0:
                    self._committed[tp] = m.offset
            self.events.append(("assigned", starts))

    def _do_commit(self, consumer: KafkaConsumer) -> None:
        with self._lock:
            offsets = {tp: o for tp, o in self._commit.items() if self._committed.get(tp) != o}
            self._commit = {}
        if not offsets:
            return
        try:
            consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}, timeout_ms=10000)
        except (Errors.CommitFailedError, Errors.KafkaError) as e:
            if isinstance(e, Errors.GroupAuthorizationFailedError | Errors.TopicAuthorizationFailedError):
                raise
            self.log.info("group %s: commit not done (%s)", self.group, e)
            return
        self._committed.update(offsets)

    def _do_earliest(self, consumer: KafkaConsumer) -> None:
        with self._lock:
            tps, self._earliest = self._earliest, set()
        if tps:
            self.events.append(("earliest", consumer.beginning_offsets(list(tps), timeout_ms=10000)))
