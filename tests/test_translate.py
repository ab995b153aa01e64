"""Offset translation through offset syncs: exact between consistent syncs, MirrorMaker 2's rule elsewhere."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mmplan.daemon import translate
from mmplan.daemon.translate import Sync, SyncHistory, histories


def history(*pairs: tuple[int, int]) -> SyncHistory:
    h = SyncHistory()
    for u, d in pairs:
        h.add(Sync(u, d))
    return h


def test_exact_hits_and_interpolation_inside_gap_free_batches():
    # batches of 10 records, source 0.. -> target 100..; a sync for each batch's last record
    h = history((9, 109), (19, 119), (29, 129))
    assert h.translate(19) == 119
    assert h.translate(15) == 115  # inside the second batch: exact, nothing re-read
    assert h.translate(30) == 130  # right after the newest sync
    assert h.translate(5) is None  # before the first sync: no answer, as MirrorMaker 2
    assert h.translate(35) == 130  # beyond what was synced: MirrorMaker 2's rule
    assert h.translate(35, exact_only=True) is None


def test_unequal_spans_fall_back_to_mirrormaker_2s_rule():
    # a transaction marker on the target after offset 109 (exactly-once): spans differ
    h = history((9, 109), (19, 120))
    assert h.translate(15) == 110  # re-reads 10..14 rather than guessing
    assert h.translate(15, exact_only=True) is None
    # first and last record of each batch synced: exact again inside the batch
    h = history((0, 100), (9, 109), (10, 111), (19, 120))
    assert h.translate(15) == 116


def test_a_replay_after_a_restart_supersedes_the_later_syncs():
    h = history((9, 109), (19, 119), (29, 129))
    h.add(Sync(14, 140))  # replicated again from 10: the copy at 135.. is the newer one
    assert [s.upstream for s in h.syncs()] == [9, 14]
    assert h.translate(14) == 140 and h.translate(12) == 110  # spans differ: re-read the first copy


def test_history_is_bounded(monkeypatch):
    monkeypatch.setattr(translate, "RECENT", 8)
    monkeypatch.setattr(translate, "SPARSE", 4)
    h = SyncHistory()
    for i in range(100):
        h.add(Sync(i * 10 + 9, i * 10 + 1009))
    assert len(h.recent) == 8 and len(h.sparse) <= 4
    assert h.translate(995) == 1995
    assert h.translate(h.sparse[0].upstream) == h.sparse[0].downstream


def test_histories_groups_by_partition():
    found = histories([("t", 0, 9, 9), ("t", 1, 4, 14), ("t", 0, 19, 19)])
    assert found[("t", 0)].translate(12) == 12 and found[("t", 1)].translate(4) == 14


@given(st.lists(st.integers(1, 50), min_size=1, max_size=30), st.data())
def test_never_skips_a_record(batch_sizes, data):
    """Target offsets shifted by a random number of foreign records (markers, duplicates) before each batch."""
    h, where, up, down = SyncHistory(), {}, 0, 0
    for size in batch_sizes:
        down += data.draw(st.integers(0, 2))
        for i in range(size):
            where[up + i] = down + i
        h.add(Sync(up, down))
        h.add(Sync(up + size - 1, down + size - 1))
        up, down = up + size, down + size
    offset = data.draw(st.integers(0, up - 1))
    assert h.translate(offset) == where[offset]  # first and last record of each batch synced: exact
    h.recent = h.recent[1::2]  # only each batch's last record synced: never past the record to read next
    answer = h.translate(offset)
    assert answer is None or answer <= where[offset]
