"""The pure pieces of exactly-once mode: ids, error classes, the position record, the transactional stamp."""

from __future__ import annotations

import kafka.errors as Errors
from kafka.protocol.producer import AddPartitionsToTxnResponse
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from mmplan.daemon import batches as B
from mmplan.daemon import transactions as T


def test_transactional_id_per_source_partition():
    assert T.transactional_id("us-east->us-west", "orders", 3) == "mmplan|us-east->us-west|orders|3"


def test_classify():
    assert T.classify(0) == T.OK
    assert T.classify(51) == T.RETRY  # CONCURRENT_TRANSACTIONS
    assert T.classify(14) == T.RETRY  # COORDINATOR_LOAD_IN_PROGRESS
    assert T.classify(15) == T.COORDINATOR
    assert T.classify(16) == T.COORDINATOR
    assert T.classify(47) == T.FENCED  # INVALID_PRODUCER_EPOCH
    assert T.classify(90) == T.FENCED  # PRODUCER_FENCED
    assert T.classify(53) == T.PERMANENT  # TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    assert T.classify(29) == T.PERMANENT
    for code in (6, 7, 45, 48, 49, 59):  # not leader, timeout, out of order, invalid txn state, pid mapping, unknown
        assert T.classify(code) == T.RESTART, code


def test_authorization_message_names_the_cluster_and_the_acl():
    message = T.permanent_message(Errors.TransactionalIdAuthorizationFailedError.errno, "us-west", "InitProducerId")
    assert "us-west" in message and "WRITE and DESCRIBE on TransactionalId prefix `mmplan|`" in message


def test_position_batch_is_transactional_and_reads_back():
    txn = T.Txn("mmplan|a->b|t|0", pid=42, epoch=3, pos_seq=7)
    data = T.position_batch("t", 0, 1234, txn)
    batch = DefaultRecordBatch(data)
    assert batch.is_transactional and batch.producer_id == 42 and batch.producer_epoch == 3
    assert batch.base_sequence == 7
    [record] = list(batch)
    assert record.key == b'["t", 0]' and record.value == b'{"offset": 1234}'
    positions = {("t", 0): 1}
    later = (1).to_bytes(8, "big") + T.position_batch("t", 0, 2000, txn)[8:]  # at offsets 1 and 2 of the log
    other = (2).to_bytes(8, "big") + T.position_batch("u", 5, 9, txn)[8:]
    split = B.split(data + later + other, 0)
    T.read_positions(split.batches, positions)
    assert positions == {("t", 0): 2000, ("u", 5): 9}


def test_read_positions_skips_foreign_records():
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    builder.append(0, 1, b"not json", b"x", [])
    builder.append(1, 1, b'["t", 1]', b'{"offset": 5}', [])
    positions: dict = {}
    T.read_positions(B.split(bytes(builder.build()), 0).batches, positions)
    assert positions == {("t", 1): 5}


def test_stamp_sets_the_transactional_bit_again():
    builder = DefaultRecordBatchBuilder(2, 0, True, 5, 0, 0, 1 << 20)
    builder.append(0, 1, b"k", b"v", [])
    [batch] = B.split(bytes(builder.build()), 0).batches
    assert not DefaultRecordBatch(bytes(batch.data)).is_transactional  # split clears it
    B.stamp(batch.data, 77, 1, 10, transactional=True)
    out = DefaultRecordBatch(bytes(batch.data))
    assert out.is_transactional and out.producer_id == 77 and out.base_sequence == 10
    assert out.validate_crc()


def test_add_partitions_error_ignores_operation_not_attempted():
    R = AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult
    P = R.AddPartitionsToTxnPartitionResult
    response = AddPartitionsToTxnResponse(throttle_time_ms=0, results_by_topic_v3_and_below=[
        R(name="a", results_by_partition=[P(partition_index=0, partition_error_code=55)]),
        R(name="b", results_by_partition=[P(partition_index=0, partition_error_code=3)])], version=3)
    assert T.add_partitions_error(response) == 3
    ok = AddPartitionsToTxnResponse(throttle_time_ms=0, results_by_topic_v3_and_below=[
        R(name="a", results_by_partition=[P(partition_index=0, partition_error_code=0)])], version=3)
    assert T.add_partitions_error(ok) == 0


def test_txn_start_over_forgets_the_open_transaction():
    txn = T.Txn("x", phase="produce", entries=[1, 2], sent=2, waiting=1, position_sent=True, refence=True)
    txn.start_over("init", delay=0)
    assert (txn.phase, txn.entries, txn.sent, txn.waiting, txn.position_sent, txn.refence, txn.gen) == (
        "init", [], 0, 0, False, False, 1)
