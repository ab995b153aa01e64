"""`FlowRunner`: one flow's replication loop.

One thread (the caller of `run`) drives everything:

- **Membership** (`membership.Membership`, a thread of its own): a regular `KafkaConsumer` in group
  `<source>-><target>` on the source, subscribed to the flow's current topics, its partitions paused. Its
  assignment changes arrive here as events; progress is committed through it, so a member that lost a partition
  cannot commit it.
- **Fetch.** One read_committed FetchRequest in flight per source leader (long poll), for the assigned partitions
  whose unacknowledged bytes are under a cap. The next fetch goes out as soon as a response has been walked.
- **Forward.** `batches.split` keeps whole v2 batches (control and aborted ones dropped); each is stamped with
  mmplan's own producer id (InitProducerId on the target) and the partition's next sequence, and sent to the same
  partition of the remote topic: one batch per partition per ProduceRequest, up to 5 requests in flight per target
  broker and 5 unacknowledged batches per partition (the broker's idempotence window), acks=all.
- **Retries.** A failed batch waits until nothing of its partition is in flight, then it and the batches behind it
  are sent again in order with the same sequences (duplicates are answered DUPLICATE_SEQUENCE_NUMBER and count as
  written). UNKNOWN_PRODUCER_ID / INVALID_PRODUCER_EPOCH / an out-of-order first batch: a new producer id once
  nothing is in flight, and the unacknowledged batches renumbered.
- **Offset syncs.** One per acknowledged batch, for its last record (upstream last offset -> downstream offset of
  that record), in MirrorMaker 2's format, to partition 0 of the flow's offset-syncs topic on the source. With a
  sync at every batch's last record MirrorMaker 2's translation (`down`, or `down + 1` past the sync) is exact at
  every batch boundary, gaps included.
- **Progress.** For every partition the position after the contiguous run of acknowledged batches (aborted and
  control batches count as done once walked) is committed to the group at most every second, and at stop.
- **Exactly-once** (`exactly_once`, or `mmplan run --exactly-once`): every source partition runs transactions of
  its own (`transactions.Txn`, its own transactional id), all partitions in parallel on the same loop. On
  assignment it fences the previous owner (InitProducerId), reads its position from the positions topic on the
  target, then repeatedly: AddPartitionsToTxn, the queued batches (up to TXN_MAX_BYTES, after at most TXN_LINGER)
  one per ProduceRequest plus the position record, EndTxn. Only a committed transaction moves the position,
  writes offset syncs (first and last record of every batch) and the group commit (best effort, for the lag).
  Any doubt (a failed request, an unexpected error) starts the partition over from the committed position; a
  fenced partition is dropped and fenced again after FENCED_WAIT only if the group still assigns it here.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import kafka.errors as Errors
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.structs import TopicPartition

from mmplan.daemon import batches as B
from mmplan.daemon import transactions as T
from mmplan.daemon import wire
from mmplan.daemon.membership import Membership
from mmplan.daemon.metrics import Metrics
from mmplan.daemon.mm2_format import offset_sync_key, offset_sync_value
from mmplan.daemon.wire import Link, Loop, fetch_request, init_producer_id_request, produce_request
from mmplan.errors import MmplanError
from mmplan.graph.compile import CompiledFlow
from mmplan.kafka.config import client_config
from mmplan.topology.models import Topology

SEQ_MOD = 1 << 31
MAX_UNACKED_PER_PARTITION = 5
PARTITION_BYTES_CAP = 8 << 20  # stop fetching a partition while this much is fetched but unacknowledged
REQUEST_BYTES_CAP = 16 << 20  # batches per ProduceRequest, at most
COMMIT_INTERVAL = 1.0
STOP_DRAIN_SECONDS = 15.0
REMOTE_TOPIC_GRACE = 30.0
TXN_MAX_BYTES = 4 << 20  # batches per transaction, at most
TXN_MIN_BYTES = 256 << 10  # a transaction starts at once with this much queued, else after TXN_LINGER
TXN_LINGER = 0.02
TXN_IN_FLIGHT = 16  # requests per target connection in exactly-once mode (one partition per ProduceRequest)
FENCED_WAIT = 5.0
_TXN_READY = ("idle", "add", "produce", "end")  # phases in which a partition is fetched

_OK_PRODUCE = (0, Errors.DuplicateSequenceNumberError.errno)
_NEW_PID = (Errors.UnknownProducerIdError.errno, Errors.InvalidProducerEpochError.errno)
_OUT_OF_ORDER = Errors.OutOfOrderSequenceNumberError.errno
_PERMANENT = (Errors.TopicAuthorizationFailedError, Errors.ClusterAuthorizationFailedError,
              Errors.TransactionalIdAuthorizationFailedError, Errors.GroupAuthorizationFailedError,
              Errors.SaslAuthenticationFailedError, Errors.MessageSizeTooLargeError,
              Errors.RecordListTooLargeError, Errors.InvalidRecordError, Errors.CorruptRecordError,
              Errors.UnsupportedForMessageFormatError, Errors.InvalidTopicError)


class PermanentError(Exception):
    """The flow cannot go on until a person changes something (authorization, a missing remote topic)."""


class RetriableError(Exception):
    """Something that may pass (a cluster unreachable, a leader moving)."""


@dataclass(slots=True)
class Entry:
    """A batch on its way to the target."""

    batch: B.Batch
    next_offset: int  # the source position once this batch is written
    seq: int = -1
    state: str = "queued"  # queued, sent, acked, failed
    sent_at: float = 0.0
    base_offset: int = -1  # on the target, once written in a transaction


@dataclass(slots=True)
class Part:
    """One assigned source partition."""

    tp: TopicPartition
    remote: str
    owned: bool = True
    fetch_pos: int = 0  # next source offset to fetch
    done_pos: int = 0  # everything before it is written on the target (or need not be)
    committed: int | None = None
    next_seq: int = 0
    queue: collections.deque = field(default_factory=collections.deque)  # fetched, not sent yet
    sent: collections.deque = field(default_factory=collections.deque)  # sent, in order (sent/acked/failed)
    in_flight: int = 0
    failed: int = 0
    resending: bool = False
    unacked_bytes: int = 0
    fetching: bool = False
    resetting: bool = False
    txn: T.Txn | None = None  # exactly-once mode
    queued_at: float = 0.0  # when the queue last became non-empty

    def busy(self) -> bool:
        return bool(self.queue or self.sent)

    def sendable(self) -> bool:
        if self.in_flight >= MAX_UNACKED_PER_PARTITION:
            return False
        if self.failed:
            if not self.resending and self.in_flight == 0:
                self.resending = True
            return self.resending
        return bool(self.queue)

    def peek(self) -> Entry:
        if self.failed:
            return next(e for e in self.sent if e.state == "failed")
        return self.queue[0]

    def take(self) -> Entry:
        if self.failed:
            e = next(e for e in self.sent if e.state == "failed")
            self.failed -= 1
            if not self.failed:
                self.resending = False
        else:
            e = self.queue.popleft()
            self.sent.append(e)
        self.in_flight += 1
        return e

    def last_entry(self) -> Entry | None:
        return self.queue[-1] if self.queue else (self.sent[-1] if self.sent else None)


class FlowRunner:
    """Replicates one flow until stopped; see the module docstring."""

    def __init__(self, flow: CompiledFlow, topology: Topology, metrics: Metrics | None = None,
                 logger: logging.Logger | None = None, fetch_max_bytes: int = 8 << 20,
                 exactly_once: bool = False) -> None:
        self.flow = flow
        self.exactly_once = exactly_once or flow.settings.exactly_once
        self.topology = topology
        self.metrics = metrics
        self.log = logger or logging.getLogger(f"mmplan.flow.{flow.name}")
        self.fetch_max_bytes = fetch_max_bytes
        self.name = flow.name
        self.state = "starting"
        self.error: str | None = None
        self._lock = threading.Lock()
        self._wanted: set[str] = set()
        self._wanted_version = 0
        self._set_state("starting")

    # -- the shell's side ---------------------------------------------------------------------------------------

    def set_topics(self, source_topics: Iterable[str]) -> None:
        topics = set(source_topics)
        with self._lock:
            if topics != self._wanted:
                self._wanted = topics
                self._wanted_version += 1

    def run(self, stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            session = None
            try:
                session = _Session(self, stop)
                session.run()
                break
            except PermanentError as e:
                self._fail(str(e), "permanent")
                return
            except MmplanError as e:  # e.g. an unset ${VAR}
                self._fail(e.message if hasattr(e, "message") else str(e), "config")
                return
            except Exception as e:  # noqa: BLE001 - the runner never raises
                if isinstance(e, _PERMANENT):
                    self._fail(_one_line(e), "permanent")
                    return
                self.error = _one_line(e)
                self._set_state("retrying")
                self._count_error("retriable")
                self.log.warning("flow %s: %s; retrying in %.0fs", self.name, self.error, backoff,
                                 exc_info=not isinstance(e, Errors.KafkaError | RetriableError))
                if session is not None and session.made_progress:
                    backoff = 1.0
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                if session is not None:
                    session.close()
        self._set_state("stopped")

    # -- helpers ------------------------------------------------------------------------------------------------

    def _fail(self, message: str, kind: str) -> None:
        self.error = message
        self._count_error(kind)
        self.log.error("flow %s failed: %s", self.name, message)
        self._set_state("failed")

    def _set_state(self, state: str) -> None:
        self.state = state
        if self.metrics is not None:
            self.metrics.set_state(self.name, state)

    def _count_error(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.error(self.name, kind)

    def _wanted_topics(self) -> tuple[int, set[str]]:
        with self._lock:
            return self._wanted_version, set(self._wanted)


def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return " ".join(text.split())[:500]


class _Session:
    """One connected life of a runner: from connecting to a clean stop or the first fatal error."""

    def __init__(self, runner: FlowRunner, stop: threading.Event) -> None:
        self.r = runner
        self.stop = stop
        self.flow = runner.flow
        self.made_progress = False
        self.loop = Loop()
        clusters = runner.topology.clusters
        suffix = "-" + uuid.uuid4().hex[:6]
        self.src = Link(self.loop, self.flow.source, clusters[self.flow.source],
                        # a fetch answers with at least one whole batch, which can exceed fetch_max_bytes
                        receive_max_bytes=runner.fetch_max_bytes + (128 << 20), client_suffix=suffix)
        self.eos = runner.exactly_once
        self.dst = Link(self.loop, self.flow.target, clusters[self.flow.target], client_suffix=suffix,
                        max_in_flight=TXN_IN_FLIGHT if self.eos else wire.MAX_IN_FLIGHT)
        self.membership: Membership | None = None
        self.membership_error: Exception | None = None
        self.parts: dict[TopicPartition, Part] = {}
        self.done: collections.deque = collections.deque()  # (kind, context, future)
        self.pid = -1
        self.epoch = -1
        self.need_pid = False
        self.syncs_topic = self.flow.policy.offset_syncs_topic(self.flow.target)
        self.syncs: list[tuple[bytes, bytes]] = []
        self.syncs_in_flight = False
        self.topics_version = -1
        self.topics: set[str] = set()
        self.last_commit = 0.0
        self.missing_remote_since: dict[str, float] = {}
        self.fetch_in_flight: set[int] = set()
        self.next_seq: dict[TopicPartition, int] = {}  # sequences of partitions given up, kept for their return
        self.positions_topic = self.flow.policy.positions_topic()
        self.positions: dict[tuple[str, int], int] = {}  # read from the positions topic up to `positions_offset`
        self.positions_offset = 0
        self.positions_target: int | None = None  # the positions topic's end when the current load began
        self.loading: list[tuple[Part, int]] | None = None  # partitions (and generations) the load is for
        self.positions_fetching = False
        self.txn_turn = 0

    # -- life cycle ---------------------------------------------------------------------------------------------

    def run(self) -> None:
        self.src.bootstrap()
        self.dst.bootstrap()
        if self.eos:
            self._ensure_positions_topic()
        else:
            self._init_pid()
        self._join()
        self.r._set_state("running")
        self.r.error = None
        while not self.stop.is_set():
            self._round()
        self._drain()

    def close(self) -> None:
        if self.membership is not None:
            self.membership.close({}, timeout=10)
            self.membership = None
        self.src.close()
        self.dst.close()
        self.loop.close()

    def _join(self) -> None:
        config = client_config(self.flow.source, self.r.topology.clusters[self.flow.source])
        self.membership = Membership(config, self.flow.name, self.flow.settings.refresh_topics.interval, self.r.log)
        self._apply_topics()
        self.membership.start()

    def _apply_topics(self) -> None:
        version, topics = self.r._wanted_topics()
        if version == self.topics_version:
            return
        self.topics_version = version
        self.topics = topics
        self.membership.subscribe(topics)
        self.src.track(topics | {self.syncs_topic})
        remotes = {self.flow.policy.remote_topic(t) for t in topics}
        self.dst.track(remotes | {self.positions_topic} if self.eos else remotes)

    # -- one round ----------------------------------------------------------------------------------------------

    def _round(self) -> None:
        self._apply_topics()
        self._membership_events()
        if self.need_pid and not any(p.in_flight for p in self.parts.values()):
            self._init_pid()
        self._send_fetches()
        if self.eos:
            self._step_txns()
            self._load_positions()
        else:
            self._send_produces()
        self._send_syncs()
        busy = bool(self.done)
        self.loop.poll(0 if busy else 0.05)
        self._handle_done()
        self._maybe_commit()

    def _membership_events(self) -> None:
        membership = self.membership
        if not membership.alive and not self.stop.is_set():
            errors = [e for kind, e in membership.events if kind == "error"]
            error = errors[-1] if errors else self.membership_error
            if isinstance(error, _PERMANENT):
                raise PermanentError(f"group {self.flow.name} on {self.flow.source}: {_one_line(error)}")
            raise RetriableError(f"group {self.flow.name} on {self.flow.source}: "
                                 f"{_one_line(error) if error else 'membership ended'}")
        events = membership.events
        while events:
            kind, value = events.popleft()
            if kind == "revoked":
                for tp in value:
                    part = self.parts.get(tp)
                    if part is not None:
                        part.owned = False
                        self._unqueue(part)
            elif kind == "assigned":
                self._take(value)
            elif kind == "error":
                self.membership_error = value
            elif kind == "earliest":
                for tp, offset in value.items():
                    part = self.parts.get(tp)
                    if part is None:
                        continue
                    if part.owned and not part.busy():
                        self.r.log.warning("flow %s: %s offset %s out of range; starting again at the earliest, %s",
                                           self.r.name, tp, part.fetch_pos, offset)
                        part.fetch_pos = part.done_pos = offset
                    part.resetting = False
        for tp in [tp for tp, p in self.parts.items() if not p.owned and not p.busy()]:
            self.next_seq[tp] = self.parts.pop(tp).next_seq  # this producer id's sequence goes on if it returns

    def _take(self, starts: dict[TopicPartition, int]) -> None:
        for tp, start in starts.items():
            part = self.parts.get(tp)
            if part is None:
                txn = T.Txn(T.transactional_id(self.flow.name, tp.topic, tp.partition)) if self.eos else None
                part = self.parts[tp] = Part(tp, self.flow.policy.remote_topic(tp.topic), txn=txn)
                part.fetch_pos = part.done_pos = start
                part.next_seq = self.next_seq.pop(tp, 0)
            else:  # ours before: keep what we wrote since, unless another member got further
                part.owned = True
                part.resetting = False
                if self.eos:  # another member may have written since: fence and read the position again
                    if part.txn.open():
                        part.txn.refence = True
                    else:
                        self._txn_drop(part)
                        part.txn.start_over("init")
                elif not part.busy() and start > part.done_pos:
                    part.fetch_pos = part.done_pos = start
            part.committed = start
            self.r.log.debug("flow %s: assigned %s from offset %s", self.r.name, tp, part.fetch_pos)

    def _unqueue(self, part: Part) -> None:
        """Forget fetched batches not yet sent; fetching resumes after the last batch sent."""
        while part.queue:
            part.unacked_bytes -= len(part.queue.pop().batch.data)
        part.fetch_pos = part.sent[-1].next_offset if part.sent else part.done_pos

    # -- fetch --------------------------------------------------------------------------------------------------

    def _send_fetches(self) -> None:
        by_node: dict[int, dict[str, list[tuple[int, int]]]] = {}
        parts: dict[int, list[Part]] = {}
        for part in self.parts.values():
            if not part.owned or part.fetching or part.resetting or part.unacked_bytes >= PARTITION_BYTES_CAP:
                continue
            if part.txn is not None and part.txn.phase not in _TXN_READY:
                continue
            node = self.src.leader(part.tp.topic, part.tp.partition)
            if node is None or node in self.fetch_in_flight:
                if node is None:
                    self.src.refresh()
                continue
            by_node.setdefault(node, {}).setdefault(part.tp.topic, []).append((part.tp.partition, part.fetch_pos))
            parts.setdefault(node, []).append((part, part.fetch_pos))
        partition_max = max(1 << 20, self.r.fetch_max_bytes // max(1, len(self.parts)))
        for node, topics in by_node.items():
            if not self.src.can_send(node):
                self.src.connecting(node)
                continue
            request = fetch_request(topics, self.r.fetch_max_bytes, min(partition_max, self.r.fetch_max_bytes))
            future = self.src.send(node, request)
            self.fetch_in_flight.add(node)
            for part, _ in parts[node]:
                part.fetching = True
            context = (node, parts[node])
            future.add_both(lambda _, c=context, f=future: self.done.append(("fetch", c, f)))

    def _on_fetch(self, context, future) -> None:
        node, parts = context
        self.fetch_in_flight.discard(node)
        for part, _ in parts:
            part.fetching = False
        if future.failed():
            self.src.refresh()
            self._retriable(f"fetch from {self.flow.source} node {node}: {_one_line(future.exception)}")
            return
        if self.r.state == "retrying" and not self.need_pid and not any(p.failed for p in self.parts.values()):
            self.r._set_state("running")  # the source answers again and nothing waits to be resent
            self.r.error = None
        by_tp = {part.tp: (part, offset) for part, offset in parts}
        metrics = self.r.metrics
        for topic in future.value.responses:
            for data in topic.partitions:
                tp = TopicPartition(topic.topic, data.partition_index)
                part, offset = by_tp.get(tp, (None, None))
                if part is None or not part.owned or part.fetch_pos != offset:
                    continue  # revoked, or reset, since the fetch was sent
                if part.txn is not None and part.txn.phase not in _TXN_READY:
                    continue  # started over since: it fetches again from its committed position
                code = data.error_code
                if code:
                    self._fetch_error(part, code)
                    continue
                records = data.records
                if records:
                    before = part.fetch_pos
                    result = B.split(records, before, data.aborted_transactions)
                    queue = part.queue
                    if not queue and result.batches:
                        part.queued_at = time.monotonic()
                    for batch in result.batches:
                        queue.append(Entry(batch, batch.last_offset + 1))
                        part.unacked_bytes += len(batch.data)
                    if result.next_offset > before:
                        last = part.last_entry()
                        if last is None:
                            part.done_pos = max(part.done_pos, result.next_offset)
                        elif last.next_offset < result.next_offset:
                            last.next_offset = result.next_offset  # dropped batches after it are done with it
                        part.fetch_pos = result.next_offset
                if metrics is not None:
                    end = data.last_stable_offset if data.last_stable_offset >= 0 else data.high_watermark
                    metrics.set_lag(self.r.name, tp.topic, tp.partition, max(0, end - part.done_pos))

    def _fetch_error(self, part: Part, code: int) -> None:
        error = Errors.for_code(code)
        if code == Errors.OffsetOutOfRangeError.errno:
            if not part.busy() and not part.resetting:
                part.resetting = True  # no fetching until the earliest offset is known
                self.membership.earliest([part.tp])
            return
        if error in _PERMANENT:
            raise PermanentError(f"fetching {part.tp.topic}-{part.tp.partition} from {self.flow.source}: "
                                 f"{error.__name__}")
        self.src.refresh()
        self.r._count_error("fetch")

    # -- produce ------------------------------------------------------------------------------------------------

    def _send_produces(self) -> None:
        if self.need_pid:
            return
        by_node: dict[int, list[Part]] = {}
        for part in self.parts.values():
            if not part.sendable():
                continue
            node = self.dst.leader(part.remote, part.tp.partition)
            if node is None:
                self._remote_missing(part.remote)
                continue
            by_node.setdefault(node, []).append(part)
        for node, parts in by_node.items():
            while parts:
                if not self.dst.can_send(node):
                    self.dst.connecting(node)
                    break
                items, size = [], 0
                for part in parts:  # one batch per partition per request
                    n = len(part.peek().batch.data)
                    if items and size + n > REQUEST_BYTES_CAP:
                        continue
                    items.append((part, part.take()))
                    size += n
                self._produce(node, items)
                parts = [p for p in parts if p.sendable()]

    def _produce(self, node: int, items: list[tuple[Part, Entry]]) -> None:
        topics: dict[str, list[tuple[int, bytearray]]] = {}
        now = time.monotonic()
        for part, e in items:
            if e.seq < 0:
                e.seq = part.next_seq
                part.next_seq = (part.next_seq + e.batch.count) % SEQ_MOD
            B.stamp(e.batch.data, self.pid, self.epoch, e.seq)
            e.state = "sent"
            e.sent_at = now
            topics.setdefault(part.remote, []).append((part.tp.partition, e.batch.data))
        future = self.dst.send(node, produce_request(topics))
        future.add_both(lambda _, c=(node, items), f=future: self.done.append(("produce", c, f)))

    def _on_produce(self, context, future) -> None:
        node, items = context
        if future.failed():
            for part, e in items:
                self._failed(part, e)
            self.dst.refresh()
            self._retriable(f"produce to {self.flow.target} node {node}: {_one_line(future.exception)}")
            return
        results = {}
        for topic in future.value.responses:
            for pr in topic.partition_responses:
                results[(topic.name, pr.index)] = pr
        for part, e in items:
            pr = results.get((part.remote, part.tp.partition))
            if e.state != "sent":
                continue
            if pr is None:
                self._failed(part, e)
                continue
            code = pr.error_code
            if code in _OK_PRODUCE:
                e.state = "acked"
                part.in_flight -= 1
                self._written(part, e.batch, pr.base_offset if code == 0 else -1)
                continue
            self._failed(part, e)
            first_unacked = next((x for x in part.sent if x.state != "acked"), None) is e
            if code in _NEW_PID or (code == _OUT_OF_ORDER and first_unacked):
                self.need_pid = True
                self.r.log.warning("flow %s: %s on %s-%s; a new producer id follows", self.r.name,
                                   Errors.for_code(code).__name__, part.remote, part.tp.partition)
                continue
            if code == _OUT_OF_ORDER:
                continue  # an earlier batch failed; resent in order
            error = Errors.for_code(code)
            if error in _PERMANENT:
                raise PermanentError(f"writing to {part.remote} on {self.flow.target}: {error.__name__}"
                                     + (f" ({pr.error_message})" if pr.error_message else ""))
            if code == Errors.UnknownTopicOrPartitionError.errno:
                self._remote_missing(part.remote)
            self.dst.refresh()
            self.r._count_error("produce")
        self._settle_all([p for p, _ in items])

    def _written(self, part: Part, batch: B.Batch, base_offset: int) -> None:
        """A batch is on the target at `base_offset` (-1: unknown, a duplicate): its offset syncs and metrics.
        At-least-once writes a sync for the batch's last record; exactly-once also for its first, since a
        transaction marker follows every transaction on the target."""
        if base_offset >= 0:
            key = offset_sync_key(part.tp.topic, part.tp.partition)
            if self.eos and batch.count > 1:
                self.syncs.append((key, offset_sync_value(batch.first_offset, base_offset)))
            self.syncs.append((key, offset_sync_value(batch.last_offset, base_offset + batch.count - 1)))
        metrics = self.r.metrics
        if metrics is not None:
            latency = time.time() - batch.max_timestamp / 1000 if batch.max_timestamp > 0 else None
            metrics.replicated(self.r.name, part.tp.topic, batch.count, len(batch.data), latency)

    def _failed(self, part: Part, e: Entry) -> None:
        if e.state == "sent":
            e.state = "failed"
            part.in_flight -= 1
            part.failed += 1
            part.resending = False

    def _settle_all(self, parts) -> None:
        for part in {id(p): p for p in parts}.values():
            sent = part.sent
            while sent and sent[0].state == "acked":
                e = sent.popleft()
                part.unacked_bytes -= len(e.batch.data)
                part.done_pos = e.next_offset
                if part.owned:
                    self.membership.positions[part.tp] = e.next_offset
                self.made_progress = True
                if self.r.state == "retrying":
                    self.r._set_state("running")
                    self.r.error = None
            if not sent and not part.owned:
                part.fetch_pos = part.done_pos

    def _remote_missing(self, topic: str) -> None:
        now = time.monotonic()
        if self.dst.partitions(topic) is not None:
            self.missing_remote_since.pop(topic, None)
            self.dst.refresh()
            return
        since = self.missing_remote_since.setdefault(topic, now)
        self.dst.refresh()
        if now - since > REMOTE_TOPIC_GRACE:
            kind = "positions topic" if topic == self.positions_topic else "remote topic"
            raise PermanentError(f"{kind} {topic} does not exist on {self.flow.target}")

    def _request_now(self, request, what: str):
        """Send `request` to any broker of the target and wait for the answer (session start only)."""
        deadline = time.monotonic() + self.dst.timeout
        while True:
            node = self.dst.any_node()
            if node is not None and self.dst.can_send(node):
                break
            if node is not None:
                self.dst.connecting(node)
            if time.monotonic() > deadline or self.stop.is_set():
                raise RetriableError(f"no broker of {self.flow.target} ready for {what}")
            self.loop.poll(0.05)
        future = self.dst.send(node, request)
        while not future.is_done and time.monotonic() < deadline + 30:
            self.loop.poll(0.05)
        if not future.is_done:
            raise RetriableError(f"{what} on {self.flow.target} timed out")
        if future.failed():
            raise future.exception
        return future.value

    def _ensure_positions_topic(self) -> None:
        self.dst.track({self.positions_topic})
        try:
            self.dst.refresh_now()
            if self.dst.partitions(self.positions_topic) is not None:
                return
        except Errors.UnknownTopicOrPartitionError:
            pass
        request = T.create_positions_topic_request(self.positions_topic, self.flow.settings.replication_factor)
        [result] = self._request_now(request, "CreateTopics").topics
        if result.error_code not in (0, Errors.TopicAlreadyExistsError.errno):
            error = Errors.for_code(result.error_code)
            message = f"creating {self.positions_topic} on {self.flow.target}: {error.__name__}"
            raise (PermanentError if error in _PERMANENT else RetriableError)(message)
        self.r.log.info("flow %s: created the positions topic %s on %s", self.r.name, self.positions_topic,
                        self.flow.target)

    def _init_pid(self) -> None:
        response = self._request_now(init_producer_id_request(), "InitProducerId")
        if response.error_code:
            error = Errors.for_code(response.error_code)
            if error in _PERMANENT:
                raise PermanentError(f"InitProducerId on {self.flow.target}: {error.__name__}")
            raise error()
        self.pid, self.epoch = response.producer_id, response.producer_epoch
        self.need_pid = False
        self.next_seq.clear()
        for part in self.parts.values():  # the unacknowledged batches are numbered again, in order, when sent
            part.next_seq = 0
            for e in part.sent:
                if e.state != "acked":
                    e.seq = -1
            for e in part.queue:
                e.seq = -1
        self.r.log.info("flow %s: producer id %s epoch %s", self.r.name, self.pid, self.epoch)

    # -- exactly-once: one transaction pipeline per partition -------------------------------------------------

    def _step_txns(self, draining: bool = False) -> None:
        """Move every partition's transaction on where it can; never waits (answers come through `done`)."""
        now = time.monotonic()
        parts = list(self.parts.values())
        self.txn_turn = (self.txn_turn + 1) % max(1, len(parts))  # partitions take turns at the connection slots
        for part in parts[self.txn_turn:] + parts[:self.txn_turn]:
            txn = part.txn
            if txn.busy or now < txn.retry_at:
                continue
            phase = txn.phase
            if phase == "produce":
                self._txn_produce(part)
            elif phase in ("add", "end"):
                self._txn_request(part)
            elif draining:
                continue
            elif phase == "idle":
                if part.owned and part.queue and (part.unacked_bytes >= TXN_MIN_BYTES
                                                  or now - part.queued_at >= TXN_LINGER):
                    self._txn_begin(part)
            elif phase == "init":
                self._txn_request(part)
            elif phase == "fenced" and part.owned:
                self.r.log.info("flow %s: %s-%s is still assigned here; fencing again", self.r.name,
                                part.tp.topic, part.tp.partition)
                txn.start_over("init")

    def _txn_begin(self, part: Part) -> None:
        txn = part.txn
        size = 0
        queue = part.queue
        while queue and (not txn.entries or size + len(queue[0].batch.data) <= TXN_MAX_BYTES):
            e = queue.popleft()
            part.sent.append(e)
            txn.entries.append(e)
            size += len(e.batch.data)
        txn.phase = "add"
        txn.sent = txn.waiting = 0
        txn.position_sent = False
        self._txn_request(part)

    def _txn_request(self, part: Part) -> None:
        """The coordinator request of the partition's phase (init, add, end), after FindCoordinator if needed."""
        txn = part.txn
        if txn.coordinator is None:
            node, kind, request = self.dst.any_node(), "find", T.find_coordinator_request(txn.tid)
        elif txn.phase == "init":
            node, kind = txn.coordinator, "init"
            request = init_producer_id_request(txn.tid, T.TRANSACTION_TIMEOUT_MS)
        elif txn.phase == "add":
            node, kind = txn.coordinator, "add"
            request = T.add_partitions_request(txn, {part.remote: [part.tp.partition], self.positions_topic: [0]})
        else:
            node, kind, request = txn.coordinator, "end", T.end_txn_request(txn, commit=True)
        if node is None or not self.dst.can_send(node):
            if node is None:
                self.dst.refresh()
            else:
                self.dst.connecting(node)
            return
        txn.busy = True
        self._call(self.dst.send(node, request), self._on_txn_answer, part, txn.gen, kind)

    def _on_txn_answer(self, part: Part, gen: int, kind: str, future) -> None:
        txn = part.txn
        if self.parts.get(part.tp) is not part or txn.gen != gen:
            return  # the partition started over (or went) since
        txn.busy = False
        what = {"find": "FindCoordinator", "init": "InitProducerId", "add": "AddPartitionsToTxn",
                "end": "EndTxn"}[kind]
        if future.failed():
            txn.coordinator = None
            self.dst.refresh()
            self._retriable(f"{what} to {self.flow.target}: {_one_line(future.exception)}")
            txn.later(0.1)
            return
        response = future.value
        code = T.add_partitions_error(response) if kind == "add" else response.error_code
        action = T.classify(code)
        if action == T.OK:
            txn.backoff = 0.0
            if kind == "find":
                txn.coordinator = response.node_id
            elif kind == "init":
                txn.pid, txn.epoch, txn.seq, txn.pos_seq = response.producer_id, response.producer_epoch, 0, 0
                txn.phase = "load"
                self.r.log.debug("flow %s: %s fenced, producer id %s epoch %s", self.r.name, txn.tid, txn.pid,
                                 txn.epoch)
            elif kind == "add":
                txn.phase = "produce"
                self._txn_produce(part)
            else:
                self._txn_committed(part)
        elif action == T.RETRY:
            txn.later(0.005, 0.2)
        elif action == T.COORDINATOR:
            txn.coordinator = None
            txn.later(0.05, 2.0)
        elif action == T.FENCED:
            self._txn_fenced(part)
        elif action == T.PERMANENT:
            raise PermanentError(T.permanent_message(code, self.flow.target, f"{what} for {txn.tid}"))
        else:
            if code == Errors.UnknownTopicOrPartitionError.errno:
                self._remote_missing(part.remote)
            self._txn_restart(part, f"{what}: {Errors.for_code(code).__name__}")

    def _txn_produce(self, part: Part) -> None:
        """Send the open transaction's batches (at most MAX_UNACKED_PER_PARTITION unanswered), then the position."""
        txn = part.txn
        entries = txn.entries
        node = self.dst.leader(part.remote, part.tp.partition)
        position_node = self.dst.leader(self.positions_topic, 0)
        if node is None or position_node is None:
            self._remote_missing(part.remote if node is None else self.positions_topic)
            return
        while txn.sent < len(entries) and txn.waiting < MAX_UNACKED_PER_PARTITION:
            if not self.dst.can_send(node):
                self.dst.connecting(node)
                return
            e = entries[txn.sent]
            e.seq = txn.seq
            txn.seq = (txn.seq + e.batch.count) % SEQ_MOD
            B.stamp(e.batch.data, txn.pid, txn.epoch, e.seq, transactional=True)
            e.state = "sent"
            txn.sent += 1
            batches = {part.remote: [(part.tp.partition, e.batch.data)]}
            if txn.sent == len(entries) and position_node == node:
                batches[self.positions_topic] = [(0, self._position_batch(part))]
            self._txn_send(part, node, batches, e)
        if txn.sent == len(entries) and not txn.position_sent and txn.waiting < MAX_UNACKED_PER_PARTITION:
            if not self.dst.can_send(position_node):
                self.dst.connecting(position_node)
                return
            self._txn_send(part, position_node, {self.positions_topic: [(0, self._position_batch(part))]}, None)

    def _position_batch(self, part: Part) -> bytes:
        txn = part.txn
        data = T.position_batch(part.tp.topic, part.tp.partition, txn.entries[-1].next_offset, txn)
        txn.pos_seq = (txn.pos_seq + 1) % SEQ_MOD
        txn.position_sent = True
        return data

    def _txn_send(self, part: Part, node: int, batches: dict, entry: Entry | None) -> None:
        txn = part.txn
        txn.waiting += 1
        future = self.dst.send(node, produce_request(batches, transactional_id=txn.tid))
        self._call(future, self._on_txn_produce, part, txn.gen, entry)

    def _on_txn_produce(self, part: Part, gen: int, entry: Entry | None, future) -> None:
        txn = part.txn
        if self.parts.get(part.tp) is not part or txn.gen != gen:
            return
        txn.waiting -= 1
        if future.failed():
            self.dst.refresh()
            self._retriable(f"produce to {self.flow.target}: {_one_line(future.exception)}")
            self._txn_restart(part, _one_line(future.exception))
            return
        for topic in future.value.responses:
            for pr in topic.partition_responses:
                code = pr.error_code
                if code == 0:
                    if entry is not None and topic.name == part.remote:
                        entry.base_offset = pr.base_offset
                    continue
                action = T.classify(code)
                if action == T.FENCED:
                    self._txn_fenced(part)
                elif action == T.PERMANENT:
                    raise PermanentError(T.permanent_message(code, self.flow.target, f"writing to {topic.name}")
                                         + (f" ({pr.error_message})" if pr.error_message else ""))
                else:
                    if code == Errors.UnknownTopicOrPartitionError.errno:
                        self._remote_missing(topic.name)
                    self.dst.refresh()
                    self._txn_restart(part, f"writing to {topic.name}: {Errors.for_code(code).__name__}")
                return
        if txn.position_sent and txn.waiting == 0:
            txn.phase = "end"
            self._txn_request(part)

    def _txn_committed(self, part: Part) -> None:
        """The transaction is committed: the position moves, offset syncs and metrics follow."""
        txn = part.txn
        for e in txn.entries:
            part.sent.popleft()
            part.unacked_bytes -= len(e.batch.data)
            self._written(part, e.batch, e.base_offset)
        part.done_pos = max(part.done_pos, txn.entries[-1].next_offset)
        if part.owned:
            self.membership.positions[part.tp] = part.done_pos
            self.membership.commit({part.tp: part.done_pos})  # best effort, for the lag; the thread coalesces
        txn.entries = []
        txn.phase = "idle"
        self.made_progress = True
        if self.r.state == "retrying":
            self.r._set_state("running")
            self.r.error = None
        if txn.refence:
            self._txn_drop(part)
            txn.start_over("init")

    def _txn_drop(self, part: Part) -> None:
        """Forget everything fetched past the committed position."""
        part.queue.clear()
        part.sent.clear()
        part.unacked_bytes = 0
        part.fetch_pos = part.done_pos

    def _txn_restart(self, part: Part, reason: str) -> None:
        """Start the partition over: a new epoch (InitProducerId aborts the open transaction), the position read
        again, fetching from there."""
        txn = part.txn
        self.r.log.info("flow %s: %s-%s starts over from its committed position: %s", self.r.name, part.tp.topic,
                        part.tp.partition, reason)
        self.r._count_error("transaction")
        self._txn_drop(part)
        txn.backoff = min(5.0, max(0.1, txn.backoff * 2))
        txn.coordinator = None
        txn.start_over("init", txn.backoff)

    def _txn_fenced(self, part: Part) -> None:
        self.r.log.warning("flow %s: %s-%s fenced: another member replicates it now; dropped here", self.r.name,
                        part.tp.topic, part.tp.partition)
        self._txn_drop(part)
        part.txn.start_over("fenced", FENCED_WAIT)

    def _load_positions(self) -> None:
        """Read the positions topic (read_committed) up to its end as seen after the waiting partitions were
        fenced, then start each of them at its position (or, with none, at the group's offset)."""
        if self.positions_fetching:
            return
        if self.loading is None:
            waiting = [(p, p.txn.gen) for p in self.parts.values() if p.txn.phase == "load"]
            if not waiting:
                return
            self.loading, self.positions_target = waiting, None
        node = self.dst.leader(self.positions_topic, 0)
        if node is None:
            self._remote_missing(self.positions_topic)
            return
        if not self.dst.can_send(node):
            self.dst.connecting(node)
            return
        request = fetch_request({self.positions_topic: [(0, self.positions_offset)]}, 8 << 20, 8 << 20,
                                max_wait_ms=100)
        self.positions_fetching = True
        self._call(self.dst.send(node, request), self._on_positions)

    def _on_positions(self, future) -> None:
        self.positions_fetching = False
        if future.failed():
            self.dst.refresh()
            self._retriable(f"reading {self.positions_topic} on {self.flow.target}: {_one_line(future.exception)}")
            return
        data = future.value.responses[0].partitions[0]
        code = data.error_code
        if code == Errors.OffsetOutOfRangeError.errno and data.log_start_offset > self.positions_offset:
            self.positions_offset = data.log_start_offset
            return
        if code:
            error = Errors.for_code(code)
            if error in _PERMANENT:
                raise PermanentError(f"reading {self.positions_topic} on {self.flow.target}: {error.__name__}")
            self.dst.refresh()
            return
        if self.positions_target is None:
            self.positions_target = data.high_watermark
        if data.records:
            result = B.split(data.records, self.positions_offset, data.aborted_transactions)
            T.read_positions(result.batches, self.positions)
            self.positions_offset = result.next_offset
        if self.positions_offset < self.positions_target:
            return  # more to read, or an open transaction holds the last stable offset back
        for part, gen in self.loading:
            txn = part.txn
            if self.parts.get(part.tp) is not part or txn.gen != gen or txn.phase != "load":
                continue
            start = self.positions.get((part.tp.topic, part.tp.partition))
            if start is None:
                start = part.committed if part.committed is not None else part.done_pos
            self._txn_drop(part)
            part.fetch_pos = part.done_pos = start
            txn.phase = "idle"
            self.r.log.debug("flow %s: %s-%s starts at %s", self.r.name, part.tp.topic, part.tp.partition, start)
        self.loading = None

    def _call(self, future, handler, *args) -> None:
        """Run `handler(*args, future)` from the round once `future` is done."""
        future.add_both(lambda _, c=(handler, args), f=future: self.done.append(("call", c, f)))

    # -- offset syncs -------------------------------------------------------------------------------------------

    def _send_syncs(self) -> None:
        if self.syncs_in_flight or not self.syncs:
            return
        node = self.src.leader(self.syncs_topic, 0)
        if node is None:
            self.src.refresh()
            return
        if not self.src.can_send(node):
            self.src.connecting(node)
            return
        records, self.syncs = self.syncs[:5000], self.syncs[5000:]
        builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 30)
        ts = int(time.time() * 1000)
        for i, (key, value) in enumerate(records):
            builder.append(i, ts, key, value, [])
        future = self.src.send(node, produce_request({self.syncs_topic: [(0, builder.build())]}))
        self.syncs_in_flight = True
        future.add_both(lambda _, c=records, f=future: self.done.append(("syncs", c, f)))

    def _on_syncs(self, records, future) -> None:
        self.syncs_in_flight = False
        code = None
        if future.succeeded():
            code = future.value.responses[0].partition_responses[0].error_code
            if code == 0:
                return
        self.syncs[:0] = records  # try again; syncs stay in order
        if code is not None and Errors.for_code(code) in _PERMANENT:
            raise PermanentError(f"writing offset syncs to {self.syncs_topic} on {self.flow.source}: "
                                 f"{Errors.for_code(code).__name__}")
        self.src.refresh()
        self.r._count_error("offset_syncs")

    # -- completions, commits -----------------------------------------------------------------------------------

    def _handle_done(self) -> None:
        while self.done:
            kind, context, future = self.done.popleft()
            if kind == "fetch":
                self._on_fetch(context, future)
            elif kind == "produce":
                self._on_produce(context, future)
            elif kind == "call":
                handler, args = context
                handler(*args, future)
            else:
                self._on_syncs(context, future)

    def _retriable(self, message: str) -> None:
        """A request failed in a way that may pass: report the flow as retrying until it makes progress."""
        self.r._count_error("network")
        if self.r.state != "retrying":
            self.r.log.warning("flow %s: %s", self.r.name, message)
        self.r.error = message[:500]
        self.r._set_state("retrying")

    def _maybe_commit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_commit < COMMIT_INTERVAL:
            return
        self.last_commit = now
        self.membership.commit(self._positions())

    def _positions(self) -> dict[TopicPartition, int]:
        return {p.tp: p.done_pos for p in self.parts.values()
                if p.owned and (p.txn is None or p.txn.phase != "fenced")}

    def _drain(self) -> None:
        """Stop fetching, let the batches already sent finish, write their syncs, commit."""
        for part in self.parts.values():
            self._unqueue(part)
        deadline = time.monotonic() + STOP_DRAIN_SECONDS
        while time.monotonic() < deadline:
            busy = any(p.sent for p in self.parts.values()) or self.syncs or self.syncs_in_flight
            if not busy:
                break
            if self.eos:
                self._step_txns(draining=True)  # open transactions finish; no new one begins
            else:
                if self.need_pid and not any(p.in_flight for p in self.parts.values()):
                    self._init_pid()
                self._send_produces()  # failed batches are sent again
            self._send_syncs()
            self.loop.poll(0.05)
            self._handle_done()
            for part in self.parts.values():
                self._unqueue(part)
        self.membership.close(self._positions(), timeout=10)
        self.membership = None

    def log_debug(self, *args) -> None:
        self.r.log.debug(*args)
