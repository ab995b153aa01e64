"""Status records: what each daemon says about each flow it runs, in the flow's status topic on the TARGET.

Format: `mmplan.daemon.status_record.StatusRecord`, key `<flow>|<daemon id>` (the daemon id is
`host:pid:random`, one per `mmplan run` process), JSON value. A daemon writes:

- `started` when it starts the flow (also at a restart after a settings change);
- the flow's state (`running`, `retrying`, `failed`; `started` while it is still starting) every status interval,
  `max(5 s, heartbeats.interval)`, and at once when the state changes; `interval_ms` carries that interval, so a
  reader calls a record older than three intervals stale (`StatusRecord.stale`): the daemon died;
- `stopped` when it stops the flow cleanly (SIGTERM/Ctrl-C, the flow removed from the topology or restarted),
  after the flow drained, before the process exits.

Several daemons running one flow each keep their own key; the topic is compacted.

Every record also carries the daemon's GitOps reconcile report when the daemon gives one (`reconcile_report`: a
callable returning some of `StatusRecord.REPORT`: version running, applier, last successful reconcile, pending
changes per reason), so `mmplan status` shows it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mmplan.daemon.metrics import Metrics
from mmplan.daemon.periodic import Episode
from mmplan.daemon.status_record import StatusRecord
from mmplan.graph.compile import CompiledFlow
from mmplan.kafka.records import producer
from mmplan.topology.models import Cluster

MIN_INTERVAL = 5.0
MAX_BLOCK_S = 2.0
WATCH = 0.5  # how often the flow's state is looked at


def status_interval(flow: CompiledFlow) -> float:
    return max(MIN_INTERVAL, flow.settings.heartbeats.interval)


def reported_state(runner_state: str, stopping: bool) -> str:
    """The status record state for a runner state (`FlowRunner.state`)."""
    if runner_state in ("running", "retrying", "failed"):
        return runner_state
    if runner_state == "stopped":
        return "stopped" if stopping else "failed"  # a runner that ended without being told to
    return "started"  # starting


class StatusWriter:
    def __init__(self, flow: CompiledFlow, cluster: Cluster, daemon_id: str, version: str | None,
                 runner_state: Callable[[], tuple[str, str | None]], metrics: Metrics | None,
                 log: logging.Logger, timeout: float = 10.0,
                 reconcile_report: Callable[[], dict] | None = None) -> None:
        self.flow = flow
        self.log = log
        self.reconcile_report = reconcile_report
        self.cluster = cluster
        self.daemon_id = daemon_id
        self.version = version
        self.runner_state = runner_state
        self.metrics = metrics
        self.timeout = timeout
        self.topic = flow.policy.status_topic()
        self.interval = status_interval(flow)
        self.episode = Episode(log, metrics, flow.name, "status")
        self.last: str | None = None  # the state of the last record sent
        self._producer = None

    def record(self, state: str, error: str | None = None) -> StatusRecord:
        report = {"version": self.version}
        if self.reconcile_report is not None:
            try:
                report.update({k: v for k, v in self.reconcile_report().items() if k in StatusRecord.REPORT})
            except Exception:  # a bug: the record goes out without the report
                self.log.exception("reconcile report for the status record")
        return StatusRecord(self.flow.name, self.daemon_id, state, int(time.time() * 1000),
                            int(self.interval * 1000), error[:500] if error else None, **report)

    def run(self, stop: threading.Event) -> None:
        """`started` now, then the flow's state every interval and on a change, until `stop`."""
        self.write(self.record("started"))
        due = time.monotonic() + self.interval
        while not stop.wait(WATCH):
            runner_state, error = self.runner_state()
            state = reported_state(runner_state, stopping=stop.is_set())
            now = time.monotonic()
            if state != self.last or now >= due:
                self.write(self.record(state, error if state != "running" else None))
                due = now + self.interval

    def write(self, record: StatusRecord) -> None:
        target = self.flow.target
        self.last = record.state  # tried: a failure is retried at the next interval, not at once
        try:
            if self._producer is None:
                self._producer = producer(target, self.cluster, self.timeout, linger_ms=0,
                                          max_block_ms=int(MAX_BLOCK_S * 1000), allow_auto_create_topics=False)
            future = self._producer.send(self.topic, key=record.key(), value=record.value(),
                                         timestamp_ms=record.time_ms)
        except Exception as e:
            self.episode.failed(target, f"writing the status record to {self.topic}", e)
            return
        future.add_callback(lambda _: self._acked())
        future.add_errback(lambda e: self.episode.failed(target, f"writing the status record to {self.topic}", e))

    def _acked(self) -> None:
        self.episode.ok()
        if self.metrics is not None:
            self.metrics.status_records.labels(self.flow.name).inc()

    def finish(self, timeout: float, error: str | None = None) -> None:
        """Write `stopped` and wait (at most `timeout`) until the target has it; then close."""
        deadline = time.monotonic() + max(timeout, 0.1)
        self.write(self.record("stopped", error))
        p, self._producer = self._producer, None
        if p is None:
            return
        try:
            p.flush(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as e:
            self.episode.failed(self.flow.target, f"writing the stopped status record to {self.topic}", e)
        try:
            p.close(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            pass
