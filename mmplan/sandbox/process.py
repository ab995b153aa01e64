"""Start Kafka processes in their own process groups and stop exactly those."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

MARKER = "-Dmmplan.sandbox.node="


def start(argv: list[str], *, cwd: Path, output: Path) -> int:
    """Start `argv` detached in a new session (its own process group); return its pid."""
    with open(output, "ab") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc.pid


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def is_ours(pid: int | None, node_dir: Path) -> bool:
    """True when `pid` is a live (non-zombie) process started for `node_dir`.

    Checking the command line guards against a recycled pid after a reboot or crash.
    """
    if not pid:
        return False
    _reap(pid)
    for _ in range(20):  # the command line reads empty for a moment while a process execs
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if cmdline:
            return (MARKER + str(node_dir)).encode() in cmdline.split(b"\0")
        time.sleep(0.05)
    return False


def exited(pid: int) -> bool:
    """True when `pid`, a child this process started, has terminated (it is reaped).

    Used while waiting for start-up: cheaper than `is_ours` and needs no command line.
    """
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (or already reaped): is it still there?
        return not Path(f"/proc/{pid}").exists()
    return done == pid


def rss_kb(pid: int) -> int | None:
    """Resident memory of `pid` in KiB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def stop(targets: list[tuple[int, Path]], timeout: float = 30.0) -> list[int]:
    """SIGTERM the process group of each of our pids, wait, then SIGKILL what is left.

    Returns the pids that were running. Pids that are no longer ours are left alone.
    """
    running = [(pid, d) for pid, d in targets if is_ours(pid, d)]
    for pid, _ in running:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_ours(p, d) for p, d in running):
        time.sleep(0.2)
    for pid, d in running:
        if is_ours(pid, d):
            _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(is_ours(p, d) for p, d in running):
        time.sleep(0.1)
    return [pid for pid, _ in running]


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by `pid` (we started it with a new session), else the pid."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
