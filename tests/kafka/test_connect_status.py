"""`mmplan status` on an `engine: connect` flow: real MirrorMaker 2 connectors on a real Kafka Connect worker.

A running flow is running (exit 0): its three connectors and their tasks RUNNING, heartbeats arriving through
the source connector, lag from the source connector's offsets. A connector paused or deleted by hand (REST)
makes the flow not up (exit 1).
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
from kafka.admin import NewTopic
from test_connect import ConnectCase

pytestmark = pytest.mark.kafka


@pytest.fixture
def case(tmp_path, kafka_pair, connect_worker):
    c = ConnectCase(tmp_path, kafka_pair, connect_worker)
    yield c
    c.cleanup()


def status(case: ConnectCase) -> tuple[int, dict]:
    result = case.mmplan("status", str(case.file), "--format", "json", "--timeout", "20")
    return result.exit_code, json.loads(result.output)["flows"][0]


def wait_status(case: ConnectCase, ok, timeout: float = 120) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout
    code, flow = status(case)
    while not ok(code, flow) and time.monotonic() < deadline:
        time.sleep(2)
        code, flow = status(case)
    return code, flow


def test_status_of_a_connect_flow_running_then_paused_then_deleted(case, clients, us_east):
    topic = case.topic("orders")
    clients.admin(us_east).create_topics([NewTopic(topic, 2, 1)])
    producer = clients.producer(us_east)
    for i in range(50):
        producer.send(topic, value=f"v{i}".encode())
    producer.flush()
    case.apply()
    case.wait_running()
    code, flow = wait_status(case, lambda code, f: code == 0 and (f["lag"] or {}).get(topic) == 0)
    assert code == 0, flow
    assert (flow["engine"], flow["state"], flow["up"]) == ("connect", "running", True)
    assert flow["heartbeat_age_ms"] is not None and flow["heartbeat_age_ms"] < 3000
    assert flow["lag"][topic] == 0  # and `heartbeats`, which the source connector replicates too
    connect = flow["connect"]
    assert connect["url"] == case.url and connect["unreachable"] is None
    assert sorted(c["name"] for c in connect["connectors"]) == sorted(case.names)
    assert all(c["state"] == "RUNNING" for c in connect["connectors"])

    text = case.mmplan("status", str(case.file)).output
    assert f"Flow {case.src}->{case.dst}: RUNNING  (connect;" in text and f"{case.src}->{case.dst}-source" in text

    source = f"{case.src}->{case.dst}-source"
    case.client.request("PUT", f"/connectors/{quote(source, safe='')}/pause")
    code, flow = wait_status(case, lambda code, f: f["state"] == "paused", timeout=60)
    assert (code, flow["state"], flow["up"]) == (1, "paused", False), flow
    assert f"connector {source} paused" in flow["reason"]
    case.client.request("PUT", f"/connectors/{quote(source, safe='')}/resume")

    heartbeat = f"{case.src}->{case.dst}-heartbeat"
    case.client.delete(heartbeat)
    code, flow = wait_status(case, lambda code, f: f["state"] == "missing", timeout=60)
    assert (code, flow["state"], flow["up"]) == (1, "missing", False), flow
    assert f"connector {heartbeat} does not exist on {case.url}" in flow["reason"]
