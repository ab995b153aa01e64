"""MirrorMaker 2's binary formats, against the byte layouts of mm2-internals.md section 2 (no broker)."""

from __future__ import annotations

import pytest

from mmplan.daemon.mm2_format import Checkpoint, Heartbeat, OffsetSync, offset_sync_key, offset_sync_value


def test_offset_sync_bytes():
    sync = OffsetSync("t", 3, 100, 90)
    assert sync.key() == bytes.fromhex("0001740000 0003".replace(" ", "")) == offset_sync_key("t", 3)
    assert sync.value() == bytes.fromhex("0000000000000064000000000000005a") == offset_sync_value(100, 90)
    assert OffsetSync.decode(sync.key(), sync.value()) == sync


def test_offset_sync_utf8_topic_and_trailing_bytes_ignored():
    sync = OffsetSync("tópico.ü", 2**31 - 1, 2**63 - 1, 0)
    assert OffsetSync.decode(sync.key() + b"x", sync.value() + b"yy") == sync


def test_heartbeat_bytes():
    hb = Heartbeat("A", "B", 1700000000000)
    assert hb.key() == bytes.fromhex("000141000142")
    assert hb.value() == bytes.fromhex("000000000 18bcfe56800".replace(" ", ""))
    assert Heartbeat.decode(hb.key(), hb.value()) == hb


def test_checkpoint_bytes():
    cp = Checkpoint("g", "A.t", 0, 100, 90, "")
    assert cp.key() == bytes.fromhex("000167 0003412e74 00000000".replace(" ", ""))
    assert cp.value() == bytes.fromhex("0000" "0000000000000064" "000000000000005a" "0000")
    assert Checkpoint.decode(cp.key(), cp.value()) == cp


def test_bad_strings_are_refused():
    with pytest.raises(ValueError):
        OffsetSync.decode(b"\xff\xff", bytes(16))
    with pytest.raises(ValueError):
        OffsetSync.decode(b"\x00\x09ab", bytes(16))
