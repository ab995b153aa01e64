"""A real `mmplan run` on the sandbox pair exports every metric family deploy/alerts.yml and
deploy/grafana-dashboard.json use, with sane values for the reconcile's gauges (issue 10, "Done when").
"""

from __future__ import annotations

import hashlib
import re
import time

import pytest
from test_deploy import used_families
from test_run import Case, Daemon

pytestmark = pytest.mark.kafka

_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@pytest.fixture
def case(tmp_path, kafka_pair, clients):
    c = Case(tmp_path, kafka_pair, clients)
    yield c
    c.close()


def parse(body: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], float]]]:
    """The exposition text: family -> type (its `# TYPE` lines), and every sample (name, labels, value).

    prometheus_client names a counter's family `<name>_total` in the text format (`# TYPE x_total counter`);
    the family name here is without it, as `Metrics().registry.collect()` names it."""
    types, samples = {}, []
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            types[family.removesuffix("_total") if kind == "counter" else family] = kind
        elif line and not line.startswith("#"):
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            samples.append((m["name"], dict(_LABEL.findall(m["labels"] or "")), float(m["value"])))
    return types, samples


def values(samples, name: str, **labels: str) -> list[float]:
    return [v for n, lab, v in samples if n == name and labels.items() <= lab.items()]


def scrape_until(daemon: Daemon, ready, timeout: float = 30.0):
    """Scrape /metrics until `ready(samples)` holds; return the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = daemon.get("/metrics")
        assert status == 200
        types, samples = parse(body)
        if ready(samples):
            return types, samples
        assert time.monotonic() < deadline, f"metrics never got ready:\n{body}"
        time.sleep(0.5)


def test_the_daemon_exports_every_metric_the_alerts_and_the_dashboard_use(case):
    case.write("    checkpoints: {interval: 1s}\n    rpo: 60s\n")
    case.create("orders", 2)
    daemon = case.run("--reconcile-interval", "2s")
    case.wait_remote("orders", timeout=40)

    producer = case.clients.producer(case.pair.kafka_config("us-east"))
    for i in range(20):
        producer.send(case.topic("orders"), key=str(i).encode(), value=f"order:{i}".encode())
    producer.flush()
    flow = case.flow

    def replicated(samples) -> bool:
        return (sum(values(samples, "mmplan_replicated_records_total", flow=flow, topic=case.topic("orders"))) >= 20
                and values(samples, "mmplan_heartbeat_last_timestamp_seconds", flow=flow) != []
                and values(samples, "mmplan_reconcile_last_success_timestamp_seconds") not in ([], [0.0]))

    started = time.time()
    types, samples = scrape_until(daemon, replicated)

    # every family the rules and the dashboard use has its `# TYPE` line in a real scrape
    used = used_families()
    assert {"mmplan_flow_state", "mmplan_replication_latency_seconds", "mmplan_changes_pending"} <= used
    missing = sorted(used - set(types))
    assert not missing, f"not in the daemon's /metrics: {missing}"
    assert types["mmplan_reconcile_errors"] == "counter" and types["mmplan_replication_latency_seconds"] == "histogram"

    # the flow's own series, as the alerts and panels read them
    assert values(samples, "mmplan_flow_state", flow=flow, state="running") == [1.0]
    assert values(samples, "mmplan_flow_rpo_seconds", flow=flow) == [60.0]
    assert sum(values(samples, "mmplan_replicated_bytes_total", flow=flow)) > 0
    assert sum(values(samples, "mmplan_replication_latency_seconds_count", flow=flow)) >= 1
    [newest] = values(samples, "mmplan_replicated_newest_timestamp_seconds", flow=flow)
    [heartbeat] = values(samples, "mmplan_heartbeat_last_timestamp_seconds", flow=flow)
    now = time.time()
    assert now - 60 < newest <= now + 1 and now - 30 < heartbeat <= now + 1
    assert values(samples, "mmplan_consumer_lag_records", flow=flow, topic=case.topic("orders")) != []

    # the reconcile: the file's sha256 running, this lone daemon applies, the last success is recent
    info = [(lab, v) for n, lab, v in samples if n == "mmplan_topology_info"]
    assert info == [({"source": "file", "version": hashlib.sha256(case.file.read_bytes()).hexdigest()}, 1.0)]
    assert values(samples, "mmplan_applier") == [1.0]
    [success] = values(samples, "mmplan_reconcile_last_success_timestamp_seconds")
    assert started - 60 < success <= time.time() + 1
    [last] = values(samples, "mmplan_reconcile_last_timestamp_seconds")
    assert last >= success
    assert values(samples, "mmplan_reconcile_errors_total") == [0.0]
    assert sum(values(samples, "mmplan_changes_applied_total", cluster=case.dst)) >= 1  # the remote topic
    assert values(samples, "mmplan_changes_pending", reason="held") == []

    code, _ = daemon.stop()
    assert code == 0
