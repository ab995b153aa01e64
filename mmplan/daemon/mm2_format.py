"""MirrorMaker 2's binary record formats (Kafka's legacy protocol Struct encoding: big-endian, no tags).

- OffsetSync (offset-syncs topic, partition 0): key `topic STRING, partition INT32` (the source topic, not
  renamed), value `upstreamOffset INT64, offset INT64`, with no version header.
- Heartbeat: key `sourceClusterAlias STRING, targetClusterAlias STRING`, value `version INT16 (0), timestamp INT64`.
- Checkpoint: key `group STRING, topic STRING, partition INT32`, value
  `version INT16 (0), upstreamOffset INT64, offset INT64, metadata STRING`.

A STRING is an INT16 byte length and UTF-8 bytes. Readers ignore trailing bytes, as Java's `Schema.read` does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_SYNC_VALUE = struct.Struct(">qq")
_HEARTBEAT_VALUE = struct.Struct(">hq")
_CHECKPOINT_OFFSETS = struct.Struct(">hqq")


def _string(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 32767:
        raise ValueError("a STRING is at most 32767 bytes")
    return _I16.pack(len(raw)) + raw


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    (size,) = _I16.unpack_from(data, pos)
    if size < 0:
        raise ValueError("negative STRING length")
    end = pos + 2 + size
    if end > len(data):
        raise ValueError("STRING runs past the end of the record")
    return bytes(data[pos + 2:end]).decode(), end


@dataclass(frozen=True)
class OffsetSync:
    topic: str  # the source topic
    partition: int
    upstream_offset: int
    downstream_offset: int

    def key(self) -> bytes:
        return _string(self.topic) + _I32.pack(self.partition)

    def value(self) -> bytes:
        return _SYNC_VALUE.pack(self.upstream_offset, self.downstream_offset)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> OffsetSync:
        topic, pos = _read_string(key, 0)
        (partition,) = _I32.unpack_from(key, pos)
        up, down = _SYNC_VALUE.unpack_from(value, 0)
        return cls(topic, partition, up, down)


def offset_sync_key(topic: str, partition: int) -> bytes:
    return _string(topic) + _I32.pack(partition)


def offset_sync_value(upstream: int, downstream: int) -> bytes:
    return _SYNC_VALUE.pack(upstream, downstream)


@dataclass(frozen=True)
class Heartbeat:
    source: str
    target: str
    timestamp: int  # ms

    def key(self) -> bytes:
        return _string(self.source) + _string(self.target)

    def value(self) -> bytes:
        return _HEARTBEAT_VALUE.pack(0, self.timestamp)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> Heartbeat:
        source, pos = _read_string(key, 0)
        target, _ = _read_string(key, pos)
        _, ts = _HEARTBEAT_VALUE.unpack_from(value, 0)
        return cls(source, target, ts)


@dataclass(frozen=True)
class Checkpoint:
    group: str
    topic: str  # the remote (renamed) topic
    partition: int
    upstream_offset: int
    downstream_offset: int
    metadata: str = ""

    def key(self) -> bytes:
        return _string(self.group) + _string(self.topic) + _I32.pack(self.partition)

    def value(self) -> bytes:
        return _CHECKPOINT_OFFSETS.pack(0, self.upstream_offset, self.downstream_offset) + _string(self.metadata)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> Checkpoint:
        group, pos = _read_string(key, 0)
        topic, pos = _read_string(key, pos)
        (partition,) = _I32.unpack_from(key, pos)
        _, up, down = _CHECKPOINT_OFFSETS.unpack_from(value, 0)
        metadata, _ = _read_string(value, _CHECKPOINT_OFFSETS.size)
        return cls(group, topic, partition, up, down, metadata)
