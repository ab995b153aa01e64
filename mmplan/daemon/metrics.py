"""Prometheus metrics of the daemon, and the `/metrics` and `/healthz` HTTP endpoints.

All updates are per batch or per poll, never per record.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

FLOW_STATES = ("starting", "running", "retrying", "failed", "stopped")


class Metrics:
    """The daemon's metrics, in a registry of their own (so tests can make several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self._newest_ms: dict[tuple, int] = {}
        self._lags: dict[str, set[tuple[str, str]]] = {}
        r = self.registry
        self.records = Counter("mmplan_replicated_records", "Records replicated", ["flow", "topic"], registry=r)
        self.bytes = Counter("mmplan_replicated_bytes", "Record batch bytes replicated", ["flow", "topic"],
                             registry=r)
        self.latency = Histogram("mmplan_replication_latency_seconds",
                                 "From the newest record timestamp of a batch to the target's acknowledgement",
                                 ["flow"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
        self.newest = Gauge("mmplan_replicated_newest_timestamp_seconds",
                            "Timestamp of the newest source record replicated (with heartbeats on, now minus this is "
                            "the flow's lag in seconds)", ["flow"], registry=r)
        self.lag = Gauge("mmplan_consumer_lag_records", "Source records not yet replicated",
                         ["flow", "topic", "partition"], registry=r)
        self.state = Gauge("mmplan_flow_state", "1 for the flow's current state", ["flow", "state"], registry=r)
        self.errors = Counter("mmplan_errors", "Errors by kind", ["flow", "kind"], registry=r)
        # side work (mmplan.daemon.sidework): heartbeats, checkpoints, group offset sync, status records
        self.heartbeats = Counter("mmplan_heartbeats", "Heartbeats acknowledged by the source cluster",
                                  ["flow"], registry=r)
        self.heartbeat_time = Gauge("mmplan_heartbeat_last_timestamp_seconds",
                                    "Timestamp of the newest heartbeat the source acknowledged", ["flow"], registry=r)
        self.offset_syncs_read = Counter("mmplan_offset_syncs_read", "Offset syncs read back for translation",
                                         ["flow"], registry=r)
        self.checkpoints = Counter("mmplan_checkpoints", "Checkpoint records acknowledged by the target",
                                   ["flow"], registry=r)
        self.checkpoint_time = Gauge("mmplan_checkpoint_last_timestamp_seconds",
                                     "Timestamp of the newest checkpoint record the target acknowledged",
                                     ["flow"], registry=r)
        self.checkpoint_groups = Gauge("mmplan_checkpoint_groups",
                                       "Consumer groups with checkpoints in the last checkpoint round", ["flow"],
                                       registry=r)
        self.group_syncs = Counter("mmplan_group_offset_syncs",
                                   "Group offset sync per group and round: committed (moved forward), current "
                                   "(nothing to move), active (refused: members on the target), failed",
                                   ["flow", "result"], registry=r)
        self.status_records = Counter("mmplan_status_records", "Status records acknowledged by the target",
                                      ["flow"], registry=r)
        # the reconcile (GitOps): what runs, when it last worked, what it changed and what it leaves
        self.flow_rpo = Gauge("mmplan_flow_rpo_seconds", "The flow's recovery point objective (rpo)", ["flow"],
                              registry=r)
        self.topology = Gauge("mmplan_topology_info", "1 for the topology running: its source (file or git) and "
                              "version (git commit, or the file's sha256)", ["source", "version"], registry=r)
        self.applier = Gauge("mmplan_applier", "1 while this daemon is the one that applies changes", registry=r)
        self.reconcile_time = Gauge("mmplan_reconcile_last_timestamp_seconds", "When the last reconcile ended",
                                    registry=r)
        self.reconcile_ok_time = Gauge("mmplan_reconcile_last_success_timestamp_seconds",
                                       "When the last successful reconcile ended", registry=r)
        self.reconcile_errors = Counter("mmplan_reconcile_errors", "Reconciles that failed (invalid topology, "
                                        "unreachable cluster, failed change)", registry=r)
        self.applied = Counter("mmplan_changes_applied", "Changes applied by the daemon's reconciles",
                               ["cluster", "kind"], registry=r)
        self.pending = Gauge("mmplan_changes_pending", "Changes the last reconcile left: held (destructive, needs "
                             "`mmplan apply --allow-delete`), deferred (waits for its flow's sync interval), "
                             "applier (left to the daemon that holds the applier lease)",
                             ["cluster", "kind", "reason"], registry=r)
        self._topology_labels: tuple[str, str] | None = None

    def replicated(self, flow: str, topic: str, records: int, size: int, latency_s: float | None) -> None:
        """One forwarded batch (or several of one topic) acknowledged by the target."""
        self.records.labels(flow, topic).inc(records)
        self.bytes.labels(flow, topic).inc(size)
        if latency_s is not None:
            self.latency.labels(flow).observe(max(latency_s, 0.0))
            self._newest(self.newest, flow, int((time.time() - latency_s) * 1000))

    def set_lag(self, flow: str, topic: str, partition: int, lag: int) -> None:
        self._lags.setdefault(flow, set()).add((topic, str(partition)))
        self.lag.labels(flow, topic, str(partition)).set(lag)

    def forget(self, flow: str) -> None:
        """Drop the gauges of a flow that left the topology, so no alert fires for a flow removed on purpose."""
        with self._lock:
            gone = [(g, (flow,)) for g in (self.newest, self.flow_rpo, self.heartbeat_time, self.checkpoint_time,
                                            self.checkpoint_groups)]
            gone += [(self.state, (flow, s)) for s in FLOW_STATES]
            gone += [(self.lag, (flow, *key)) for key in self._lags.pop(flow, ())]
            for gauge, labels in gone:
                try:
                    gauge.remove(*labels)
                except KeyError:
                    pass
            for key in [k for k in self._newest_ms if k[1] == flow]:
                del self._newest_ms[key]

    def set_state(self, flow: str, state: str) -> None:
        for s in FLOW_STATES:
            self.state.labels(flow, s).set(1 if s == state else 0)

    def error(self, flow: str, kind: str) -> None:
        self.errors.labels(flow, kind).inc()

    def heartbeat(self, flow: str, timestamp_ms: int) -> None:
        """One heartbeat acknowledged (from a producer's I/O thread)."""
        self.heartbeats.labels(flow).inc()
        self._newest(self.heartbeat_time, flow, timestamp_ms)

    def checkpointed(self, flow: str, records: int, newest_ms: int) -> None:
        self.checkpoints.labels(flow).inc(records)
        self._newest(self.checkpoint_time, flow, newest_ms)

    def _newest(self, gauge: Gauge, flow: str, timestamp_ms: int) -> None:
        with self._lock:  # acknowledgements may arrive out of order: the gauge never goes back
            key = (gauge, flow)
            if timestamp_ms > self._newest_ms.get(key, -1):
                self._newest_ms[key] = timestamp_ms
                gauge.labels(flow).set(timestamp_ms / 1000)

    def group_sync(self, flow: str, result: str, groups: int = 1) -> None:
        self.group_syncs.labels(flow, result).inc(groups)

    def running(self, source: str, version: str, rpos: dict[str, float | None]) -> None:
        """The topology now running, and its flows' RPOs."""
        with self._lock:
            if self._topology_labels != (source, version):
                if self._topology_labels is not None:
                    self.topology.remove(*self._topology_labels)
                self._topology_labels = (source, version)
                self.topology.labels(source, version).set(1)
        for flow, rpo in rpos.items():
            if rpo is not None:
                self.flow_rpo.labels(flow).set(rpo)

    def reconciled(self, ok: bool, applied: list[tuple[str, str]], pending: list[tuple[str, str, str]],
                   applier: bool) -> None:
        """One reconcile: (cluster, kind) of each change applied, (cluster, kind, reason) of each left."""
        now = time.time()
        self.reconcile_time.set(now)
        if ok:
            self.reconcile_ok_time.set(now)
        else:
            self.reconcile_errors.inc()
        self.applier.set(1 if applier else 0)
        for cluster, kind in applied:
            self.applied.labels(cluster, kind).inc()
        counts = collections.Counter(pending)
        self.pending.clear()
        for labels, n in counts.items():
            self.pending.labels(*labels).set(n)


def serve(metrics: Metrics, port: int, health: Callable[[], tuple[bool, dict]],
          host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve /metrics and /healthz (200 when healthy, else 503; JSON detail) on a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            if self.path == "/metrics":
                body, status, kind = generate_latest(metrics.registry), 200, CONTENT_TYPE_LATEST
            elif self.path == "/healthz":
                ok, detail = health()
                body, status, kind = json.dumps(detail).encode(), 200 if ok else 503, "application/json"
            else:
                body, status, kind = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # keep scrapes out of the daemon's log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="mmplan-metrics", daemon=True).start()
    return server
