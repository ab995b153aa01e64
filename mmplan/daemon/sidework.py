"""A flow's side work in the daemon: heartbeats, checkpoints and group offset sync, status records.

Beside each flow's `FlowRunner` thread the daemon runs, per flow, up to three threads of side work, none of which
touches the replication hot path (they read the flow's state and talk to the clusters with clients of their own):

- `heartbeats.HeartbeatWriter` (when `heartbeats.enabled`): a heartbeat every `heartbeats.interval` on the source;
- `checkpoints.CheckpointWorker` (when `checkpoints.enabled` or `sync_group_offsets.enabled`): tails the offset
  syncs, writes checkpoints every `checkpoints.interval`, syncs idle target groups every
  `sync_group_offsets.interval`;
- `reporting.StatusWriter` (always): `started`, the flow's state every `max(5 s, heartbeats.interval)` and on a
  change, `stopped` after a clean stop; with `reconcile_report`, each record also carries the daemon's reconcile
  report (version, applier, last successful reconcile, pending changes).

With several daemons running one flow, each one does all three: heartbeats and checkpoints are written by every
daemon (identical content up to timing; readers look at the newest record per key) and each daemon has its own
status key. See the modules for the formats. A failure of side work never stops the flow: it is logged once per
episode, counted in `mmplan_errors_total`, and retried at the next interval.

Stopping: `halt()` tells the threads to stop (at once, when the flow is told to stop); `finish(timeout)` after
the flow's runner has drained waits for them, writes `stopped` and closes every client, within `timeout`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from mmplan.daemon.checkpoints import CheckpointWorker
from mmplan.daemon.heartbeats import HeartbeatWriter
from mmplan.daemon.metrics import Metrics
from mmplan.daemon.reporting import StatusWriter
from mmplan.graph.compile import CompiledFlow
from mmplan.topology.models import Topology


def daemon_id() -> str:
    """host:pid:random, unique per `mmplan run` process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class FlowSideWork:
    def __init__(self, flow: CompiledFlow, topology: Topology, *, runner_state: Callable[[], tuple[str, str | None]],
                 daemon: str, version: str | None = None, metrics: Metrics | None = None,
                 logger: logging.Logger | None = None, timeout: float = 10.0,
                 reconcile_report: Callable[[], dict] | None = None) -> None:
        self.flow = flow
        self.log = logger or logging.getLogger(f"mmplan.flow.{flow.name}")
        source, target = topology.clusters[flow.source], topology.clusters[flow.target]
        self.stop = threading.Event()
        self.status = StatusWriter(flow, target, daemon, version, runner_state, metrics, self.log, timeout,
                                   reconcile_report=reconcile_report)
        self.workers: list[tuple[str, Callable[[threading.Event], None]]] = [("status", self.status.run)]
        if flow.settings.heartbeats.enabled:
            self.heartbeats = HeartbeatWriter(flow, source, metrics, self.log, timeout)
            self.workers.append(("heartbeats", self.heartbeats.run))
        checkpoints = CheckpointWorker(flow, source, target, metrics, self.log, timeout)
        if checkpoints.active:
            self.checkpoints = checkpoints
            self.workers.append(("checkpoints", checkpoints.run))
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, work in self.workers:
            thread = threading.Thread(target=self._guarded, args=(name, work), daemon=True,
                                      name=f"mmplan-{name}-{self.flow.name}")
            self.threads.append(thread)
            thread.start()

    def _guarded(self, name: str, work: Callable[[threading.Event], None]) -> None:
        try:
            work(self.stop)
        except Exception:  # a bug: the flow goes on without this side work
            self.log.exception("%s stopped by an unexpected error (replication goes on)", name)

    def problems(self) -> dict[str, str]:
        """The side work failing now: kind -> the error logged when the episode began (or the newest one)."""
        episodes = [self.status.episode]
        if hasattr(self, "heartbeats"):
            episodes.append(self.heartbeats.episode)
        if hasattr(self, "checkpoints"):
            c = self.checkpoints
            episodes += [c.read_episode, c.cp_episode, c.sync_episode]
        return {e.kind: e.failing for e in episodes if e.failing}

    def halt(self) -> None:
        self.stop.set()

    def finish(self, timeout: float, error: str | None = None) -> bool:
        """After the flow stopped: wait for the threads, write `stopped`. True when done within `timeout`."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        joined_by = time.monotonic() + timeout / 2  # the other half is for writing `stopped`
        for thread in self.threads:
            thread.join(max(0.0, joined_by - time.monotonic()))
        self.status.finish(max(0.1, deadline - time.monotonic()), error)
        late = [t.name for t in self.threads if t.is_alive()]
        if late:
            self.log.warning("side work still busy at stop: %s", ", ".join(late))
        return not late
