"""A live view for a terminal: one line per flow, redrawn every second, under the log lines.

    us-east->us-west   running     12,345 rec/s    1,234,567 records   lag 42

Only when stderr is a terminal and the log format is text; the log handler writes through
`ProgressView.stream`, which lifts the view, prints the log line and puts the view back.
Everything comes from the metrics and the runners' states: nothing per record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from mmplan.daemon.metrics import Metrics

States = Callable[[], Mapping[str, tuple[str, str | None]]]


def flow_totals(metrics: Metrics) -> tuple[dict[str, float], dict[str, float]]:
    """Records replicated and lag in records, per flow, summed over topics and partitions."""
    records: dict[str, float] = {}
    lag: dict[str, float] = {}
    for metric in metrics.records.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                flow = sample.labels["flow"]
                records[flow] = records.get(flow, 0.0) + sample.value
    for metric in metrics.lag.collect():
        for sample in metric.samples:
            flow = sample.labels["flow"]
            lag[flow] = lag.get(flow, 0.0) + sample.value
    return records, lag


def render_lines(states: Mapping[str, tuple[str, str | None]], records: Mapping[str, float],
                 lag: Mapping[str, float], rates: Mapping[str, float], width: int = 120) -> list[str]:
    """One line per flow: name, state, records/s, total records, lag (and the error of a failed flow)."""
    name_w = max((len(n) for n in states), default=0)
    lines = []
    for name, (state, error) in states.items():
        line = (f"{name:<{name_w}}  {state:<8}  {rates.get(name, 0.0):>10,.0f} rec/s  "
                f"{records.get(name, 0.0):>13,.0f} records  "
                + (f"lag {lag[name]:,.0f}" if name in lag else "lag -"))
        if error and state in ("failed", "retrying"):
            line += f"  {error}"
        lines.append(line[:width])
    return lines


class ProgressView:
    """Redraws the flows' lines on `out` (a terminal) every `period` seconds until stopped."""

    def __init__(self, metrics: Metrics, states: States, out: TextIO, period: float = 1.0) -> None:
        self.metrics = metrics
        self.states = states
        self.out = out
        self.period = period
        self._lock = threading.Lock()
        self._shown = 0  # lines of the view currently on screen
        self._lines: list[str] = []
        self._last: tuple[float, dict[str, float]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mmplan-progress", daemon=True)
        self.stream = _Through(self)

    def start(self) -> ProgressView:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(2 * self.period)
        self.refresh()  # leave the final state on screen, below the last log line
        with self._lock:
            self._shown = 0

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.refresh()

    def refresh(self) -> None:
        records, lag = flow_totals(self.metrics)
        now = time.monotonic()
        rates: dict[str, float] = {}
        if self._last is not None:
            then, before = self._last
            span = max(now - then, 1e-3)
            rates = {name: max(0.0, (total - before.get(name, 0.0)) / span) for name, total in records.items()}
        self._last = (now, records)
        lines = render_lines(self.states(), records, lag, rates, _width(self.out))
        with self._lock:
            self._lift()
            self._draw(lines)

    def _lift(self) -> None:
        """Erase the view's lines (the cursor is just below them)."""
        if self._shown:
            self.out.write(f"\x1b[{self._shown}F\x1b[J")
            self._shown = 0

    def _draw(self, lines: list[str]) -> None:
        self._lines = lines
        for line in lines:
            self.out.write(line + "\x1b[K\n")
        self._shown = len(lines)
        self.out.flush()

    def write_log(self, text: str) -> None:
        with self._lock:
            self._lift()
            self.out.write(text)
            if text.endswith("\n"):
                self._draw(self._lines)
            else:
                self.out.flush()


class _Through:
    """A stream for the log handler that keeps the view below the log lines."""

    def __init__(self, view: ProgressView) -> None:
        self._view = view

    def write(self, text: str) -> int:
        self._view.write_log(text)
        return len(text)

    def flush(self) -> None:
        self._view.out.flush()

    def isatty(self) -> bool:
        return True


def _width(out: TextIO) -> int:
    import os

    try:
        return max(40, os.get_terminal_size(out.fileno()).columns - 1)
    except (OSError, AttributeError, ValueError):
        return 120
