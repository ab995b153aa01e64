"""Heartbeats: one record every `heartbeats.interval` in MirrorMaker 2's format, on the SOURCE cluster.

Key `(source alias, target alias)`, value `version 0, timestamp ms` (`mm2_format.Heartbeat`), partition 0 of the
flow's heartbeats topic (`heartbeats.topic`, default `heartbeats`), with the record timestamp equal to the value's.
The flow replicates that topic like any other to `<source><sep>heartbeats` on the target, so a heartbeat's age
there measures the whole pipe (source write, replication, target write). Every daemon running the flow writes its
own heartbeats: more records with the same key, harmless, and the newest one is what a reader looks at.
"""

from __future__ import annotations

import logging
import threading
import time

from mmplan.daemon.metrics import Metrics
from mmplan.daemon.mm2_format import Heartbeat
from mmplan.daemon.periodic import Episode
from mmplan.graph.compile import CompiledFlow
from mmplan.kafka.records import producer
from mmplan.topology.models import Cluster

MAX_BLOCK_S = 2.0  # a send waits at most this long for metadata of an unreachable cluster


class HeartbeatWriter:
    def __init__(self, flow: CompiledFlow, cluster: Cluster, metrics: Metrics | None, log: logging.Logger,
                 timeout: float = 10.0) -> None:
        self.flow = flow
        self.cluster = cluster
        self.metrics = metrics
        self.timeout = timeout
        self.topic = flow.settings.heartbeats.topic
        self.interval = flow.settings.heartbeats.interval
        self.episode = Episode(log, metrics, flow.name, "heartbeats")
        self._producer = None

    def run(self, stop: threading.Event) -> None:
        due = time.monotonic()
        try:
            while not stop.is_set():
                self.beat()
                due = max(due + self.interval, time.monotonic())
                stop.wait(due - time.monotonic())
        finally:
            self.close()

    def beat(self) -> None:
        source = self.flow.source
        try:
            if self._producer is None:
                self._producer = producer(source, self.cluster, self.timeout, linger_ms=0,
                                          max_block_ms=int(MAX_BLOCK_S * 1000),
                                          allow_auto_create_topics=False)
            ts = int(time.time() * 1000)
            beat = Heartbeat(source, self.flow.target, ts)
            future = self._producer.send(self.topic, key=beat.key(), value=beat.value(), partition=0,
                                         timestamp_ms=ts)
        except Exception as e:  # unreachable, no permission, no metadata in time: next interval
            self.episode.failed(source, f"writing heartbeats to {self.topic}", e)
            return
        future.add_callback(lambda _: self._acked(ts))
        future.add_errback(lambda e: self.episode.failed(source, f"writing heartbeats to {self.topic}", e))

    def _acked(self, ts: int) -> None:
        self.episode.ok()
        if self.metrics is not None:
            self.metrics.heartbeat(self.flow.name, ts)

    def close(self, timeout: float = 2.0) -> None:
        p, self._producer = self._producer, None
        if p is not None:
            try:
                p.close(timeout=timeout)
            except Exception:  # closing must never fail a stop
                pass
