"""Helpers of the daemon's side work (heartbeats, checkpoints, group offset sync, status records).

`Episode` logs a failing piece of side work once per episode (when it starts failing, and when it works again),
naming the cluster, and counts every failure in `mmplan_errors_total{kind=...}`; the work is retried at its next
interval. `describe_error` turns a client exception into one line that names the cluster.
"""

from __future__ import annotations

import logging
import threading

from mmplan.daemon.metrics import Metrics
from mmplan.errors import MmplanError


def describe_error(alias: str, what: str, error: BaseException | str) -> str:
    """One line: what failed, on which cluster, and why (an MmplanError already names its cluster)."""
    if isinstance(error, MmplanError):
        where = f"{error.where}: " if error.where else f"cluster {alias}: "
        return f"{what}: {where}{error.message}"
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    else:
        text = error
    return f"{what}: cluster {alias}: {text}"


class Episode:
    """One kind of side work of one flow: failures logged once per episode, each one counted."""

    def __init__(self, log: logging.Logger, metrics: Metrics | None, flow: str, kind: str) -> None:
        self.log = log
        self.metrics = metrics
        self.flow = flow
        self.kind = kind
        self.failing: str | None = None
        self._lock = threading.Lock()

    def failed(self, alias: str, what: str, error: BaseException | str) -> None:
        message = describe_error(alias, what, error)
        if self.metrics is not None:
            self.metrics.error(self.flow, self.kind)
        with self._lock:
            first, self.failing = self.failing is None, message
        if first:
            self.log.warning("%s (retried every interval; replication goes on)", message,
                             extra={"cluster": alias, "side": self.kind})
        else:
            self.log.debug("%s", message, extra={"cluster": alias, "side": self.kind})

    def ok(self) -> None:
        with self._lock:
            was, self.failing = self.failing, None
        if was is not None:
            self.log.info("%s works again", self.kind.replace("_", " "), extra={"side": self.kind})
