"""Moving a consumer group to the other cluster: what to commit there and whether to refuse. Pure.

Rules (`failover`, `failback` and `drill` share them):
- The group must have no active members on the cluster it moves to (a running consumer would overwrite, and
  Kafka refuses commits to an active group anyway).
- Never move a partition backwards: a group already ahead there keeps its offset (it consumed there, or a
  group-offset sync committed it), unless `allow_rewind`. A partition with the same offset is left alone.
- Refuse when there is nothing to translate, or when the translation may be older than the flow's RPO: a
  partition's exposure is 0 when its translated source offset is at least the group's committed source offset
  now (nothing newer to translate), else the age of its checkpoint. `force` overrides the age check only.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmplan.ops.offsets import Resume


@dataclass(frozen=True)
class Move:
    topic: str
    partition: int
    current: int | None  # the group's committed offset there now
    resume: Resume
    commit: int | None  # the offset to commit; None: leave the partition as it is
    note: str

    def doc(self) -> dict:
        return {"topic": self.topic, "partition": self.partition, "current": self.current,
                "translated": self.resume.offset, "commit": self.commit, "note": self.note,
                "source_topic": self.resume.source_topic, "source_offset": self.resume.source_offset,
                "from": self.resume.origin, "exact": self.resume.exact}


def plan_moves(resumes: dict[tuple[str, int], Resume], current: dict[tuple[str, int], int],
               allow_rewind: bool = False) -> list[Move]:
    moves = []
    for key in sorted(resumes):
        r = resumes[key]
        now = current.get(key)
        if now is None:
            moves.append(Move(r.topic, r.partition, None, r, r.offset, "new"))
        elif r.offset > now:
            moves.append(Move(r.topic, r.partition, now, r, r.offset, "forward"))
        elif r.offset == now:
            moves.append(Move(r.topic, r.partition, now, r, None, "unchanged"))
        elif allow_rewind:
            moves.append(Move(r.topic, r.partition, now, r, r.offset, "rewind (--allow-rewind)"))
        else:
            moves.append(Move(r.topic, r.partition, now, r, None,
                              f"kept: already at {now}, ahead of {r.offset} (--allow-rewind moves it back)"))
    return moves


def exposure_ms(resumes: dict[tuple[str, int], Resume], source_committed: dict[tuple[str, int], int] | None,
                now_ms: int) -> int:
    """The oldest translation that is behind the group's source offsets (0 when all are current).
    `source_committed` is None when the source could not be read: then every checkpoint's age counts."""
    worst = 0
    for r in resumes.values():
        if r.checkpoint_ms is None:
            continue  # translated from the current source offsets
        if source_committed is not None and r.source_offset >= source_committed.get((r.source_topic, r.partition),
                                                                                     -1):
            continue
        worst = max(worst, now_ms - r.checkpoint_ms)
    return worst


def refusal(group: str, where: str, resumes: dict, members: tuple[str, int], exposure: int, rpo_ms: int | None,
            force: bool) -> str | None:
    """Why the group must not be moved, or None."""
    state, count = members
    if count or state not in ("Empty", "Dead"):
        return (f"group {group} has {count} active member{'s' if count != 1 else ''} on {where} (state {state}): "
                "stop its consumers there first")
    if not resumes:
        return f"nothing to translate for group {group}"
    if rpo_ms is not None and exposure > rpo_ms and not force:
        return (f"the translated offsets of group {group} may be {exposure / 1000:.1f}s old, over the flow's rpo "
                f"of {rpo_ms / 1000:g}s (--force moves it anyway)")
    return None


def app_changes(from_servers: list[str], to_servers: list[str], moves: list[Move], group: str) -> list[tuple[str, str]]:
    """What the application must change to consume on the other cluster: (setting, change)."""
    renames = dict.fromkeys(f"{m.resume.source_topic} -> {m.topic}" for m in moves if m.resume.source_topic != m.topic)
    out = [("bootstrap.servers", f"{','.join(from_servers)} -> {','.join(to_servers)}")]
    out += [("topic", rename) for rename in renames]
    out.append(("group.id", f"{group} (unchanged)"))
    return out


def render_text(title: str, moves: list[Move], changes: list[tuple[str, str]], notes: list[str],
                done: bool, refused: str | None = None) -> str:
    lines = [title]
    if moves:
        widths = [max(len(m.topic) for m in moves), max(len(str(m.partition)) for m in moves)]
        lines.append(f"  {'topic':<{widths[0]}}  {'p':>{widths[1]}}  {'current':>8}  {'commit':>8}  from")
        for m in moves:
            current = "-" if m.current is None else str(m.current)
            commit = "-" if m.commit is None else str(m.commit)
            origin = f"{m.resume.origin} ({m.resume.source_topic}@{m.resume.source_offset}"
            origin += ", exact)" if m.resume.exact else ")"
            lines.append(f"  {m.topic:<{widths[0]}}  {m.partition:>{widths[1]}}  {current:>8}  {commit:>8}  {origin}"
                         f"  {m.note}")
    for note in notes:
        lines.append(f"  note: {note}")
    committed = sum(m.commit is not None for m in moves)
    if refused:
        lines.append(f"Refused, nothing committed: {refused}")
        return "\n".join(lines) + "\n"
    lines.append(("Committed" if done else "Would commit") + f" {committed} of {len(moves)} partitions.")
    if changes:
        lines.append("")
        lines.append("The application must change:")
        width = max(len(k) for k, _ in changes)
        for key, change in changes:
            lines.append(f"  {key:<{width}}  {change}")
    return "\n".join(lines) + "\n"
