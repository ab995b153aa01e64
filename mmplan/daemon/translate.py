"""Offset translation: where a consumer of a source partition resumes on the target. Pure.

An offset sync maps one source offset (upstream) to the target offset (downstream) its record was written at.
MirrorMaker 2's rule (`OffsetSyncStore.translateDownstream`): take the newest sync at or below the committed
offset; the answer is its downstream offset when the offsets are equal, else that plus one, so a consumer
re-reads the records between the sync and its position. mmplan writes a sync for every forwarded batch, which
lets it be exact: between two syncs whose upstream and downstream spans are equal, the records sit at the same
distances on both sides (a forwarded batch keeps its records' offset deltas, nothing else was written in
between), so the answer is the first sync's downstream plus the distance. Where the spans differ (gaps in the
source, duplicates or transaction markers on the target) the answer falls back to MirrorMaker 2's rule, which
may re-read but never skips a record.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

RECENT = 4096  # syncs kept per partition at full resolution
SPARSE = 64  # older syncs kept, thinned by halving


@dataclass(frozen=True, order=True)
class Sync:
    upstream: int
    downstream: int


@dataclass
class SyncHistory:
    """The syncs of one source partition, in upstream order, as read from the offset-syncs topic."""

    recent: list[Sync] = field(default_factory=list)
    sparse: list[Sync] = field(default_factory=list)

    def add(self, sync: Sync) -> None:
        """Record the next sync read from the topic. A sync at or below earlier ones means the partition was
        replicated again from an older position (a restart after a crash): the later copy supersedes them."""
        if self.recent and sync.upstream <= self.recent[-1].upstream:
            del self.recent[bisect.bisect_left(self.recent, Sync(sync.upstream, -1)):]
            if not self.recent:
                del self.sparse[bisect.bisect_left(self.sparse, Sync(sync.upstream, -1)):]
        self.recent.append(sync)
        if len(self.recent) > RECENT:
            self.sparse.append(self.recent.pop(0))
            if len(self.sparse) > SPARSE:
                self.sparse = self.sparse[1::2] if len(self.sparse) % 2 == 0 else self.sparse[::2]

    def syncs(self) -> list[Sync]:
        return self.sparse + self.recent

    def translate(self, offset: int, exact_only: bool = False) -> int | None:
        """The target offset to resume from for committed source `offset`; None when no sync is at or below it
        (or, with `exact_only`, when the answer would not be exact)."""
        syncs = self.syncs()
        i = bisect.bisect_right(syncs, Sync(offset, 1 << 62)) - 1
        if i < 0:
            return None
        low = syncs[i]
        if low.upstream == offset:
            return low.downstream
        if i + 1 < len(syncs):
            high = syncs[i + 1]
            if high.upstream - low.upstream == high.downstream - low.downstream:
                return low.downstream + (offset - low.upstream)
        elif offset == low.upstream + 1:
            return low.downstream + 1  # the record right after the newest sync: nothing replicated between
        return None if exact_only else low.downstream + 1

    def newest(self) -> Sync | None:
        return self.recent[-1] if self.recent else None


def histories(syncs: Iterable[tuple[str, int, int, int]]) -> dict[tuple[str, int], SyncHistory]:
    """(topic, partition) -> history, from (topic, partition, upstream, downstream) in the topic's order."""
    out: dict[tuple[str, int], SyncHistory] = {}
    for topic, partition, upstream, downstream in syncs:
        out.setdefault((topic, partition), SyncHistory()).add(Sync(upstream, downstream))
    return out
