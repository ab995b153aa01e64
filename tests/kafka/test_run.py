"""`mmplan run` as a real process on the sandbox pair: reconcile at start and on a timer, SIGHUP, metrics,
health, replication by the real FlowRunner, a clean SIGTERM.

Each test gives the shared clusters aliases of its own (`e<id>`, `w<id>`) and a heartbeats topic of its own,
as tests/kafka/test_plan_apply.py does, so nothing it creates touches another test's topics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from isolated import pair_topology
from kafka.admin import NewTopic

pytestmark = pytest.mark.kafka

# the installed console script, beside this interpreter in the virtual environment
MMPLAN = str(Path(sys.executable).with_name("mmplan"))


class Daemon:
    """One `mmplan run` process; its stderr (JSON log lines) goes to a file."""

    def __init__(self, tmp_path, file, *args: str):
        self.log_path = tmp_path / f"run-{uuid.uuid4().hex[:4]}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [MMPLAN, "run", str(file), "--log-format", "json", "--metrics-port", "0", *args],
            stdout=subprocess.PIPE, stderr=self._log, text=True, env={**os.environ, "NO_COLOR": "1"})
        self.port = None

    def lines(self) -> list[dict]:
        text = self.log_path.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_log(self, predicate, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for doc in self.lines():
                if predicate(doc):
                    return doc
            assert self.proc.poll() is None, f"mmplan run exited {self.proc.returncode}:\n{self.log_path.read_text()}"
            assert time.monotonic() < deadline, f"no such log line:\n{self.log_path.read_text()}"
            time.sleep(0.1)

    def get(self, path: str) -> tuple[int, str]:
        if self.port is None:
            self.port = self.wait_log(lambda d: "port" in d)["port"]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self, timeout: float = 15.0) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


class Case:
    def __init__(self, tmp_path, kafka_pair, clients):
        self.id = uuid.uuid4().hex[:6]
        self.src, self.dst = f"e{self.id}", f"w{self.id}"
        self.prefix = f"p{self.id}"
        self.pair = kafka_pair
        self.tmp = tmp_path
        self.clients = clients
        self.east = clients.admin(kafka_pair.kafka_config("us-east"))
        self.west = clients.admin(kafka_pair.kafka_config("us-west"))
        self.file = tmp_path / "topology.yaml"
        self.daemons: list[Daemon] = []
        self.write()

    def write(self, extra: str = "") -> None:
        self.file.write_text(pair_topology(self.pair, self.id, flow_extra=extra))

    @property
    def flow(self) -> str:
        return f"{self.src}->{self.dst}"

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def remote(self, name: str) -> str:
        return f"{self.src}.{self.prefix}.{name}"

    def create(self, name: str, partitions: int = 1) -> None:
        self.east.create_topics([NewTopic(self.topic(name), partitions, 1)])

    def run(self, *args: str) -> Daemon:
        daemon = Daemon(self.tmp, self.file, *args)
        self.daemons.append(daemon)
        return daemon

    def wait_remote(self, name: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.remote(name) not in self.west.list_topics():
            assert time.monotonic() < deadline, f"{self.remote(name)} was not created"
            time.sleep(0.2)

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.close()


@pytest.fixture
def case(tmp_path, kafka_pair, clients):
    c = Case(tmp_path, kafka_pair, clients)
    yield c
    c.close()


def test_reconciles_at_start_and_on_the_timer_serves_metrics_and_stops_cleanly(case):
    case.create("orders", 2)
    daemon = case.run("--reconcile-interval", "2s")
    case.wait_remote("orders")
    applied = daemon.wait_log(lambda d: d["msg"].startswith("applied") and case.remote("orders") in d["msg"])
    assert applied["level"] == "info" and applied["flow"] == case.flow and applied["cluster"] == case.dst

    # a topic created while running is picked up within the reconcile interval, and handed to the flow
    case.create("fresh")
    case.wait_remote("fresh", timeout=10)
    daemon.wait_log(lambda d: d.get("flow") == case.flow and case.topic("fresh") in d.get("topics", []))

    status, body = daemon.get("/metrics")
    assert status == 200 and f'mmplan_flow_state{{flow="{case.flow}",state="running"}} 1.0' in body
    deadline = time.monotonic() + 15
    while (status := daemon.get("/healthz")[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    status, body = daemon.get("/healthz")
    health = json.loads(body)
    assert status == 200 and health["ok"], body
    assert health["flows"] == {case.flow: {"state": "running", "error": None}}
    assert health["reconcile"]["ok"] and health["topology"]["stale"] is None

    code, took = daemon.stop()
    assert code == 0 and took < 10
    assert all({"ts", "level", "logger", "msg"} <= set(d) for d in daemon.lines())
    assert daemon.proc.stdout.read() == ""


def test_sighup_reconciles_now_and_a_broken_reload_keeps_the_last_good_topology(case):
    case.create("a")
    daemon = case.run("--reconcile-interval", "1h")
    case.wait_remote("a")
    daemon.wait_log(lambda d: d["msg"].startswith("reconcile:"))

    case.file.write_text(case.file.read_text() + "  - {source: nowhere, target: " + case.dst + "}\n")
    case.create("b")
    daemon.proc.send_signal(signal.SIGHUP)
    case.wait_remote("b", timeout=15)  # reconciled with the last good topology
    status, body = daemon.get("/healthz")
    assert "nowhere" in json.loads(body)["topology"]["stale"]
    assert daemon.wait_log(lambda d: "cannot be used" in d["msg"])["level"] == "error"

    code, _ = daemon.stop()
    assert code == 0


def test_an_unreachable_cluster_is_retried_and_reported_and_the_stop_stays_bounded(case):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    case.file.write_text(case.file.read_text().replace(case.pair.cluster("us-west").bootstrap_servers,
                                                       f"127.0.0.1:{dead}"))
    case.create("a")
    daemon = case.run("--reconcile-interval", "1s", "--timeout", "1")
    first = daemon.wait_log(lambda d: d["msg"].startswith("reconcile") and d["level"] == "error")
    assert case.dst in first["msg"]
    daemon.wait_log(lambda d: d["msg"].startswith("reconcile") and d["level"] == "error" and d["ts"] > first["ts"])
    status, body = daemon.get("/healthz")
    health = json.loads(body)
    assert status == 503 and not health["ok"] and not health["reconcile"]["ok"]
    assert case.dst in health["reconcile"]["result"]
    # the flow's runner notices the stop once its own connection attempt gives up (kafka-python's 10 s
    # bootstrap timeout), well within the daemon's 30 s bound
    code, took = daemon.stop(timeout=40)
    assert code == 0 and took < 35


def read_all(consumer, want: int, timeout: float = 45.0) -> dict:
    got = {}
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        for record in consumer:
            got[record.key] = (record.value, record.partition, record.headers, record.timestamp)
    return got


def test_records_are_replicated_and_counted(case):
    case.create("orders", 2)
    producer = case.clients.producer(case.pair.kafka_config("us-east"))
    ts = int(time.time() * 1000) - 60_000

    def produce(topic: str, n: int) -> dict:
        sent = {}
        for i in range(n):
            key, value, headers = f"k{i}".encode(), f"v{i}".encode(), [("h", str(i).encode())]
            producer.send(topic, key=key, value=value, partition=i % 2 if topic.endswith("orders") else 0,
                          headers=headers, timestamp_ms=ts + i)
            sent[key] = (value, i % 2 if topic.endswith("orders") else 0, headers, ts + i)
        producer.flush()
        return sent

    sent = produce(case.topic("orders"), 200)
    daemon = case.run("--reconcile-interval", "2s")
    case.wait_remote("orders")
    consumer = case.clients.consumer(case.pair.kafka_config("us-west"), case.remote("orders"),
                                     auto_offset_reset="earliest", consumer_timeout_ms=1000)
    assert read_all(consumer, 200) == sent

    # a topic created while running: created on the target and replicated within the reconcile interval
    case.create("late")
    late = produce(case.topic("late"), 20)
    case.wait_remote("late", timeout=10)
    consumer = case.clients.consumer(case.pair.kafka_config("us-west"), case.remote("late"),
                                     auto_offset_reset="earliest", consumer_timeout_ms=1000)
    assert read_all(consumer, 20, timeout=20) == late

    deadline = time.monotonic() + 10
    while True:
        _, body = daemon.get("/metrics")
        counted = {line.split('topic="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
                   for line in body.splitlines()
                   if line.startswith("mmplan_replicated_records_total{") and f'flow="{case.flow}"' in line}
        if counted.get(case.topic("orders")) == 200 and counted.get(case.topic("late")) == 20:
            break
        assert time.monotonic() < deadline, counted
        time.sleep(0.5)

    code, took = daemon.stop()
    assert code == 0 and took < 10


def test_invalid_topology_exits_1_with_the_finding(case):
    case.file.write_text(case.file.read_text() + "  - {source: nowhere, target: " + case.dst + "}\n")
    result = subprocess.run([MMPLAN, "run", str(case.file)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "nowhere" in result.stderr + result.stdout and "unknown-cluster" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
