"""The transaction protocol of exactly-once mode (see docs/exactly-once.md): ids, requests, the position record,
what an error code means for a partition's transaction. No I/O; `flow._Session` drives it.

Each source partition has its own transactional id, `mmplan|<source>-><target>|<topic>|<partition>`, so the
next owner of a partition fences exactly the previous one (InitProducerId aborts its open transaction). A
transaction carries the partition's forwarded batches (transactional bit set) to the remote partition and one
position record (key `["<topic>", p]`, value `{"offset": next}`) to the flow's positions topic on the target.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import kafka.errors as Errors
from kafka.protocol.admin import CreateTopicsRequest
from kafka.protocol.metadata import FindCoordinatorRequest
from kafka.protocol.producer import AddPartitionsToTxnRequest, EndTxnRequest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

TRANSACTION_TIMEOUT_MS = 60000  # also how long a dead member's open transaction can hold back target consumers
ACL_NEEDED = "WRITE and DESCRIBE on TransactionalId prefix `mmplan|`"

# what to do about an error code
OK, RETRY, COORDINATOR, FENCED, RESTART, PERMANENT = "ok", "retry", "coordinator", "fenced", "restart", "permanent"

_RETRY = {Errors.CoordinatorLoadInProgressError.errno, Errors.ConcurrentTransactionsError.errno}
_COORDINATOR = {Errors.CoordinatorNotAvailableError.errno, Errors.NotCoordinatorError.errno}
_FENCED = {Errors.InvalidProducerEpochError.errno, 90}  # 90 PRODUCER_FENCED
_PERMANENT = {Errors.TransactionalIdAuthorizationFailedError.errno, Errors.TopicAuthorizationFailedError.errno,
              Errors.ClusterAuthorizationFailedError.errno, Errors.MessageSizeTooLargeError.errno,
              Errors.RecordListTooLargeError.errno, Errors.InvalidRecordError.errno, Errors.CorruptRecordError.errno,
              Errors.InvalidTopicError.errno, Errors.InvalidTransactionTimeoutError.errno}
_NOT_ATTEMPTED = Errors.OperationNotAttemptedError.errno


def classify(code: int) -> str:
    """OK; RETRY the same request soon; find the COORDINATOR again; FENCED by a newer owner; RESTART the
    partition (new producer epoch, position read again); PERMANENT (the flow fails)."""
    if code == 0:
        return OK
    if code in _RETRY:
        return RETRY
    if code in _COORDINATOR:
        return COORDINATOR
    if code in _FENCED:
        return FENCED
    if code in _PERMANENT:
        return PERMANENT
    return RESTART


def permanent_message(code: int, cluster: str, what: str) -> str:
    error = Errors.for_code(code).__name__
    if code == Errors.TransactionalIdAuthorizationFailedError.errno:
        return (f"{what} on {cluster}: {error}: exactly-once mode needs {ACL_NEEDED} on {cluster} "
                f"for the principal mmplan connects as")
    return f"{what} on {cluster}: {error}"


def transactional_id(flow: str, topic: str, partition: int) -> str:
    return f"mmplan|{flow}|{topic}|{partition}"


@dataclass(slots=True)
class Txn:
    """The transaction state of one source partition.

    Phases: init (InitProducerId: fences the previous owner and aborts its open transaction) -> load (the
    position is read from the positions topic) -> idle; then per transaction add (AddPartitionsToTxn) -> produce
    -> end (EndTxn) -> idle. `fenced`: a newer owner took the partition; it waits, then starts over if still
    assigned. The coordinator is looked up (FindCoordinator) whenever `coordinator` is None.
    """

    tid: str
    phase: str = "init"
    coordinator: int | None = None
    pid: int = -1
    epoch: int = -1
    seq: int = 0  # next sequence on the remote partition (continues across transactions of one epoch)
    pos_seq: int = 0  # next sequence on the positions partition
    entries: list = field(default_factory=list)  # the batches of the open transaction, in order
    sent: int = 0  # how many of `entries` are sent
    waiting: int = 0  # produce requests of the open transaction not answered yet
    position_sent: bool = False
    gen: int = 0  # bumped whenever the partition starts over: answers of an older generation are ignored
    busy: bool = False  # a coordinator request is in flight
    retry_at: float = 0.0
    backoff: float = 0.0
    refence: bool = False  # assigned again while a transaction was open: fence again after it

    def open(self) -> bool:
        return self.phase in ("add", "produce", "end")

    def start_over(self, phase: str, delay: float = 0.0) -> None:
        self.phase = phase
        self.gen += 1
        self.entries = []
        self.sent = self.waiting = 0
        self.position_sent = False
        self.busy = False
        self.refence = False
        self.retry_at = time.monotonic() + delay

    def later(self, minimum: float = 0.005, maximum: float = 5.0) -> None:
        """Retry the current step after a growing backoff."""
        self.backoff = min(maximum, max(minimum, self.backoff * 2))
        self.retry_at = time.monotonic() + self.backoff


def find_coordinator_request(tid: str) -> FindCoordinatorRequest:
    return FindCoordinatorRequest(key=tid, key_type=1, max_version=3)


def add_partitions_request(txn: Txn, partitions: dict[str, list[int]]) -> AddPartitionsToTxnRequest:
    T = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic
    return AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=txn.tid, v3_and_below_producer_id=txn.pid,
        v3_and_below_producer_epoch=txn.epoch,
        v3_and_below_topics=[T(name=t, partitions=ps) for t, ps in partitions.items()], max_version=3)


def add_partitions_error(response) -> int:
    """The error that counts in an AddPartitionsToTxn (v<=3) response: a partition's, else 0."""
    codes = [r.partition_error_code for t in response.results_by_topic_v3_and_below for r in t.results_by_partition]
    return next((c for c in codes if c and c != _NOT_ATTEMPTED), 0)


def end_txn_request(txn: Txn, commit: bool) -> EndTxnRequest:
    return EndTxnRequest(transactional_id=txn.tid, producer_id=txn.pid, producer_epoch=txn.epoch,
                         committed=commit, max_version=3)


def create_positions_topic_request(name: str, replication_factor: int) -> CreateTopicsRequest:
    """The positions topic as plan/apply makes it (one partition, compacted), for `--exactly-once` on a flow whose
    topology does not say exactly_once, where no apply created it."""
    C = CreateTopicsRequest.CreatableTopic
    topic = C(name=name, num_partitions=1, replication_factor=replication_factor, assignments=[],
              configs=[C.CreatableTopicConfig(name="cleanup.policy", value="compact")])
    return CreateTopicsRequest(topics=[topic], timeout_ms=30000, validate_only=False, max_version=4)


def position_key(topic: str, partition: int) -> bytes:
    return json.dumps([topic, partition]).encode()


def position_batch(topic: str, partition: int, offset: int, txn: Txn) -> bytes:
    """The position record as a transactional batch of the partition's producer, with the next sequence."""
    builder = DefaultRecordBatchBuilder(2, 0, True, txn.pid, txn.epoch, txn.pos_seq, 1 << 20)
    builder.append(0, int(time.time() * 1000), position_key(topic, partition),
                   json.dumps({"offset": offset}).encode(), [])
    return bytes(builder.build())


def read_positions(batches, into: dict[tuple[str, int], int]) -> None:
    """Fold committed position batches (`batches.Batch`es, in log order) into {(topic, partition): offset}."""
    for batch in batches:
        for record in DefaultRecordBatch(bytes(batch.data)):
            try:
                topic, partition = json.loads(record.key)
                into[(topic, int(partition))] = int(json.loads(record.value)["offset"])
            except (TypeError, ValueError, KeyError):
                continue  # not a position record: never written by mmplan
