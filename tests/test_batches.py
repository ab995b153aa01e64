"""Record batches on the hot path: walking, filtering, patching and stamping v2 batches (no broker)."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from crc32c import crc32c
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

from mmplan.daemon import batches as B


def build(base: int, records: list[tuple], codec: int = 0, pid: int = -1, epoch: int = -1, seq: int = -1,
          transactional: bool = False, offsets: list[int] | None = None, log_append: int | None = None,
          last_delta: int | None = None) -> bytearray:
    """A v2 batch as a broker would hand it out: base offset set; optional gaps, LogAppendTime, last delta."""
    builder = DefaultRecordBatchBuilder(2, codec, transactional, pid, epoch, seq, 1 << 24)
    for i, (key, value, ts, headers) in enumerate(records):
        builder.append(offsets[i] if offsets else i, ts, key, value, headers)
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base)
    if last_delta is not None:
        struct.pack_into(">i", data, 23, last_delta)
    if log_append is not None:
        attrs = struct.unpack_from(">h", data, 21)[0] | B.TIMESTAMP_TYPE
        struct.pack_into(">h", data, 21, attrs)
        struct.pack_into(">q", data, 35, log_append)
    struct.pack_into(">I", data, 17, crc32c(bytes(data[21:])))
    return data


def control(base: int, pid: int, commit: bool) -> bytearray:
    data = build(base, [(struct.pack(">hh", 0, 1 if commit else 0), b"\x00\x00\x00\x00\x00\x00", 1, [])],
                 pid=pid, epoch=0, seq=-1, transactional=True)
    attrs = struct.unpack_from(">h", data, 21)[0] | B.CONTROL
    struct.pack_into(">h", data, 21, attrs)
    struct.pack_into(">I", data, 17, crc32c(bytes(data[21:])))
    return data


def recs(n: int, start: int = 0) -> list[tuple]:
    return [(f"k{start + i}".encode(), f"v{start + i}".encode() * 10, 1700000000000 + start + i,
             [("h", f"{start + i}".encode())]) for i in range(n)]


def decode(data: bytes) -> list[tuple]:
    return [(r.key, r.value, r.timestamp, r.headers) for r in DefaultRecordBatch(bytes(data))]


def header(data: bytes) -> tuple:
    return B.HEADER.unpack_from(data)


def test_plain_batches_are_forwarded_whole_with_base_offset_zero():
    a, b = build(100, recs(3)), build(103, recs(2, 3), codec=1)
    out = B.split(bytes(a + b), 100)
    assert [(x.first_offset, x.last_offset, x.count) for x in out.batches] == [(100, 102, 3), (103, 104, 2)]
    assert out.next_offset == 105 and out.dropped == 0
    first = out.batches[0].data
    assert header(first)[0] == 0 and first[8:] == a[8:]  # only baseOffset changed
    assert not any(x.rewritten for x in out.batches)
    B.stamp(first, 7, 3, 11)
    h = header(first)
    assert (h[9], h[10], h[11]) == (7, 3, 11)
    assert DefaultRecordBatch(bytes(first)).validate_crc()
    assert decode(first) == decode(a)
    assert decode(out.batches[1].data) == recs(2, 3)
    assert DefaultRecordBatch(bytes(out.batches[1].data)).compression_type == 1


def test_partial_trailing_batch_is_left_for_the_next_fetch():
    a, b = build(0, recs(2)), build(2, recs(2, 2))
    out = B.split(bytes(a + b[: len(b) - 5]), 0)
    assert [x.count for x in out.batches] == [2] and out.next_offset == 2
    assert B.split(bytes(a[:30]), 0).next_offset == 0


def test_batches_before_the_fetch_offset_are_skipped_and_a_straddling_one_trimmed():
    a, b = build(0, recs(3)), build(3, recs(3, 3))
    out = B.split(bytes(a + b), 4)
    [batch] = out.batches
    assert (batch.first_offset, batch.last_offset, batch.count, batch.rewritten) == (4, 5, 2, True)
    assert decode(batch.data) == recs(3, 3)[1:]
    assert [r.offset for r in DefaultRecordBatch(bytes(batch.data))] == [0, 1]


def test_transactional_bit_cleared_and_aborted_and_control_batches_dropped():
    committed = build(0, recs(2), pid=5, epoch=0, seq=0, transactional=True)
    aborted = build(2, recs(2, 2), pid=6, epoch=0, seq=0, transactional=True)
    other = build(5, recs(1, 5), pid=5, epoch=0, seq=2, transactional=True)
    blob = committed + aborted + control(4, 6, commit=False) + other + control(6, 5, commit=True) + build(7, recs(1, 7))
    txn = [SimpleNamespace(producer_id=6, first_offset=2)]
    out = B.split(bytes(blob), 0, txn)
    assert [(x.first_offset, x.count) for x in out.batches] == [(0, 2), (5, 1), (7, 1)]
    assert out.dropped == 3 and out.next_offset == 8
    for x in out.batches:
        assert not header(x.data)[5] & (B.TRANSACTIONAL | B.CONTROL)
    # without the abort list (read_uncommitted view) the aborted batch would be kept
    assert len(B.split(bytes(blob), 0).batches) == 4


def test_abort_marker_ends_the_abort_so_later_batches_of_that_producer_are_kept():
    blob = (build(0, recs(1), pid=6, epoch=0, seq=0, transactional=True) + control(1, 6, commit=False)
            + build(2, recs(1, 2), pid=6, epoch=0, seq=1, transactional=True) + control(3, 6, commit=True))
    out = B.split(bytes(blob), 0, [SimpleNamespace(producer_id=6, first_offset=0)])
    assert [x.first_offset for x in out.batches] == [2]


def test_compacted_batch_with_gaps_is_renumbered():
    raw = build(10, recs(3), offsets=[0, 2, 5], last_delta=6)
    out = B.split(bytes(raw), 10)
    [batch] = out.batches
    assert batch.rewritten and (batch.first_offset, batch.last_offset, batch.count) == (10, 15, 3)
    assert out.next_offset == 17
    assert [r.offset for r in DefaultRecordBatch(bytes(batch.data))] == [0, 1, 2]
    assert header(batch.data)[6] == 2 and decode(batch.data) == recs(3)


def test_empty_batch_left_by_compaction_is_skipped():
    raw = build(10, recs(1), last_delta=4)
    struct.pack_into(">i", raw, 57, 0)
    raw = raw[:61]
    struct.pack_into(">i", raw, 8, len(raw) - 12)
    out = B.split(bytes(raw), 10)
    assert out.batches == [] and out.next_offset == 15 and out.dropped == 1


@pytest.mark.parametrize("codec", [0, 1])
def test_log_append_time_batch_gets_the_append_time_on_every_record(codec):
    raw = build(0, recs(3), codec=codec, log_append=1800000000000)
    [batch] = B.split(bytes(raw), 0).batches
    assert batch.rewritten
    assert [r.timestamp for r in DefaultRecordBatch(bytes(batch.data))] == [1800000000000] * 3
    assert not header(batch.data)[5] & B.TIMESTAMP_TYPE
    assert DefaultRecordBatch(bytes(batch.data)).compression_type == codec


def test_old_format_message_set_becomes_v2():
    builder = LegacyRecordBatchBuilder(1, 0, 1 << 20)
    for i in range(3):
        builder.append(i, timestamp=1700000000000 + i, key=b"k%d" % i, value=b"v%d" % i)
    legacy = bytearray(builder.build())
    for i in range(3):  # a broker hands out absolute offsets
        pos = 0
        for _ in range(i):
            pos += 12 + struct.unpack_from(">i", legacy, pos + 8)[0]
        struct.pack_into(">q", legacy, pos, 20 + i)
    out = B.split(bytes(legacy + build(23, recs(1))), 21)
    assert [(x.first_offset, x.last_offset, x.count) for x in out.batches] == [(21, 22, 2), (23, 23, 1)]
    converted = DefaultRecordBatch(bytes(out.batches[0].data))
    assert [(r.key, r.value) for r in converted] == [(b"k1", b"v1"), (b"k2", b"v2")]
    assert out.next_offset == 24


def test_stamp_sets_producer_fields_and_a_valid_crc():
    data = bytearray(build(0, recs(5)))
    B.stamp(data, 123456789, 2, (1 << 31) - 3)
    batch = DefaultRecordBatch(bytes(data))
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (123456789, 2, (1 << 31) - 3)
    assert batch.validate_crc()
