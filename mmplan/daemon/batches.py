"""Record batches on the hot path: walk a fetched partition blob, keep what must be replicated, patch, stamp.

Pure functions of bytes, no I/O. The common case touches only the 61-byte v2 batch header:

- `split` walks a fetched partition blob batch by batch (by the length field), drops control batches and the
  batches of aborted transactions (with the fetch response's `aborted_transactions`, as a read_committed consumer
  does), skips empty batches and batches wholly before the fetch offset, stops at a trailing partial batch, and
  returns `Batch`es ready to forward: `baseOffset` 0 (Kafka 4.x refuses anything else from a client) and the
  transactional bit cleared.
- `stamp` writes mmplan's producer id, epoch and base sequence (and, in exactly-once mode, the transactional bit)
  into a batch and recomputes its CRC-32C.

Batches that cannot be forwarded as they are get re-encoded record by record (`rewrite`), the only per-record
Python: compacted batches whose offsets have gaps (the broker demands `lastOffsetDelta + 1 == count`), batches
that start before the fetch offset, LogAppendTime batches (forwarded as they are, the target would show the
producer's create times; MirrorMaker 2 writes the source's append time, and so does the rewrite), and old-format
(v0/v1) message sets, which are converted to v2.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from crc32c import crc32c
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

HEADER = struct.Struct(">qiibIhiqqqhii")  # baseOffset .. recordCount: the 61-byte v2 batch header
HEADER_SIZE = HEADER.size
_LEN = struct.Struct(">qi")
_ATTRS = struct.Struct(">h")
_PRODUCER = struct.Struct(">qhi")  # producerId, producerEpoch, baseSequence at byte 43
_CRC = struct.Struct(">I")
_ZERO_OFFSET = bytes(8)
_ATTRIBUTES_AT = 21
_PRODUCER_AT = 43

CODEC_MASK = 0x07
TIMESTAMP_TYPE = 0x08  # LogAppendTime
TRANSACTIONAL = 0x10
CONTROL = 0x20

MAX_REWRITE_BYTES = 1 << 30


@dataclass(slots=True)
class Batch:
    """One v2 batch to forward, and the upstream offsets it carries."""

    data: bytearray  # baseOffset 0, not transactional; `stamp` sets the producer fields and the CRC
    first_offset: int  # upstream offset of its first record
    last_offset: int  # upstream offset of its last record
    count: int
    max_timestamp: int  # ms
    rewritten: bool = False


@dataclass(slots=True)
class Split:
    batches: list[Batch]
    next_offset: int  # where to fetch next: after the last complete batch walked (dropped ones included)
    dropped: int  # control, aborted and empty batches skipped


def stamp(data: bytearray, producer_id: int, epoch: int, sequence: int, transactional: bool = False) -> None:
    """Set the producer id, epoch and base sequence of a v2 batch (and the transactional bit when asked: `split`
    clears it) and recompute its CRC-32C, in place."""
    _PRODUCER.pack_into(data, _PRODUCER_AT, producer_id, epoch, sequence)
    if transactional:
        data[_ATTRIBUTES_AT + 1] |= TRANSACTIONAL
    _CRC.pack_into(data, 17, crc32c(memoryview(data)[_ATTRIBUTES_AT:]))


def split(blob: bytes, fetch_offset: int, aborted: list | None = None) -> Split:
    """The batches of one fetched partition blob that are to be replicated, from `fetch_offset` on.

    `aborted` is the fetch response's `aborted_transactions` (objects with `producer_id` and `first_offset`).
    """
    out: list[Batch] = []
    n = len(blob)
    pos = 0
    next_offset = fetch_offset
    dropped = 0
    pending = sorted(((a.first_offset, a.producer_id) for a in aborted), reverse=True) if aborted else []
    aborted_pids: set[int] = set()
    view = memoryview(blob)
    while pos + 17 <= n:
        base, length = _LEN.unpack_from(blob, pos)
        end = pos + 12 + length
        if end > n:
            break  # a trailing partial batch: fetched again next time
        magic = blob[pos + 16]
        if magic < 2:
            legacy_end = _legacy_end(blob, pos, n)
            batch = _legacy(view[pos:legacy_end], next_offset) if legacy_end > pos else None
            pos = max(legacy_end, end)
            if batch is None:
                continue
            next_offset = batch.last_offset + 1
            out.append(batch)
            continue
        if end - pos < HEADER_SIZE:
            break
        (_, _, _, _, _, attrs, last_delta, _, max_ts, pid, _, _, count) = HEADER.unpack_from(blob, pos)
        last = base + last_delta
        batch_start, pos = pos, end
        if last < next_offset:
            continue  # already replicated (a fetch may return the batch holding the fetch offset)
        next_offset = last + 1
        if pid >= 0 and pending:
            while pending and pending[-1][0] <= last:
                aborted_pids.add(pending.pop()[1])
        if attrs & CONTROL:
            if pid in aborted_pids and _is_abort_marker(view[batch_start:end], attrs):
                aborted_pids.discard(pid)
            dropped += 1
            continue
        if (attrs & TRANSACTIONAL and pid in aborted_pids) or count == 0:
            dropped += 1
            continue
        if count != last_delta + 1 or attrs & TIMESTAMP_TYPE or base < fetch_offset:
            batch = rewrite(view[batch_start:end], fetch_offset)
            if batch is not None:
                out.append(batch)
            else:
                dropped += 1
            continue
        data = bytearray(view[batch_start:end])
        data[0:8] = _ZERO_OFFSET
        if attrs & TRANSACTIONAL:
            _ATTRS.pack_into(data, _ATTRIBUTES_AT, attrs & ~TRANSACTIONAL)
        out.append(Batch(data, base, last, count, max_ts))
    return Split(out, next_offset, dropped)


def _is_abort_marker(batch: memoryview, attrs: int) -> bool:
    """A control batch's record key is (version INT16, type INT16); type 0 is ABORT, 1 COMMIT."""
    for record in DefaultRecordBatch(bytes(batch)):
        key = record.key
        return key is not None and len(key) >= 4 and struct.unpack_from(">h", key, 2)[0] == 0
    return False


def rewrite(batch: memoryview | bytes, from_offset: int) -> Batch | None:
    """Re-encode a v2 batch record by record: offsets renumbered 0..n-1, records before `from_offset`
    dropped, LogAppendTime applied to every record's timestamp. None when no record is left."""
    src = DefaultRecordBatch(bytes(batch))
    log_append = src.timestamp_type == 1
    codec = src.compression_type
    builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, MAX_REWRITE_BYTES)
    first = last = None
    i = 0
    max_ts = src.max_timestamp
    for record in src:
        if record.offset < from_offset:
            continue
        ts = max_ts if log_append else record.timestamp
        builder.append(i, ts, record.key, record.value, record.headers)
        if first is None:
            first = record.offset
        last = record.offset
        i += 1
    if not i:
        return None
    data = builder.build()
    return Batch(bytearray(data), first, last, i, HEADER.unpack_from(data)[8], rewritten=True)


def _legacy_end(blob: bytes, pos: int, n: int) -> int:
    """The end of the run of complete v0/v1 message-set entries starting at `pos`."""
    while pos + 17 <= n and blob[pos + 16] < 2:
        _, length = _LEN.unpack_from(blob, pos)
        if pos + 12 + length > n:
            break
        pos += 12 + length
    return pos


def _legacy(entries: memoryview, from_offset: int) -> Batch | None:
    """v0/v1 message-set entries (possibly compressed wrappers) as one uncompressed v2 batch."""
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, MAX_REWRITE_BYTES)
    first = last = None
    i = 0
    records = MemoryRecords(bytes(entries))
    while (legacy := records.next_batch()) is not None:
        for record in legacy:
            if record.offset < from_offset:
                continue
            builder.append(i, record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None,
                           record.key, record.value, [])
            first = record.offset if first is None else first
            last = record.offset
            i += 1
    if not i:
        return None
    data = builder.build()
    return Batch(bytearray(data), first, last, i, HEADER.unpack_from(data)[8], rewritten=True)
