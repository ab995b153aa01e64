"""CPU seconds and resident memory of a process tree, read from /proc (Linux only).

    sampler = TreeSampler(pid).start()   # samples every `interval` seconds in a thread
    ...
    sampler.cpu_seconds()                # utime+stime of the tree so far (exited, reaped children included)
    sampler.peak_rss_mb                  # the largest sum of RSS over the tree seen by any sample
    sampler.stop()

The tree is the root and every live descendant (by parent pid). CPU of a process is its utime+stime; the
highest value seen per pid is kept, so a child that exits still counts with what it had used at the last sample
(cutime/cstime are left out: they would count a reaped child twice).
"""

from __future__ import annotations

import os
import threading

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(ppid, cpu seconds, rss bytes) of `pid`, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime=14, stime=15, rss=24 (1-based)
    ppid = int(fields[1])
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    rss = int(fields[21]) * _PAGE
    return ppid, cpu, rss


def tree(root: int) -> dict[int, tuple[float, int]]:
    """{pid: (cpu seconds, rss bytes)} for `root` and its live descendants."""
    stats: dict[int, tuple[int, float, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = _stat(int(name))
            if s is not None:
                stats[int(name)] = s
    if root not in stats:
        return {}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu, _rss) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        out[pid] = (stats[pid][1], stats[pid][2])
        todo.extend(children.get(pid, ()))
    return out


class TreeSampler:
    """Samples a process tree's CPU and RSS in a daemon thread until stopped."""

    def __init__(self, root: int, interval: float = 0.2):
        self.root = root
        self.interval = interval
        self.peak_rss_mb = 0.0
        self._cpu: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"procstat-{root}", daemon=True)

    def start(self) -> TreeSampler:
        self.sample()
        self._thread.start()
        return self

    def sample(self) -> None:
        procs = tree(self.root)
        if not procs:
            return
        with self._lock:
            for pid, (cpu, _rss) in procs.items():
                self._cpu[pid] = max(cpu, self._cpu.get(pid, 0.0))
            self.peak_rss_mb = max(self.peak_rss_mb, sum(r for _c, r in procs.values()) / 2**20)

    def cpu_seconds(self) -> float:
        """CPU used by the tree so far (takes a fresh sample first)."""
        self.sample()
        with self._lock:
            return sum(self._cpu.values())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
