"""`mmplan status` for `engine: connect` flows: the pure part (connector states, heartbeats, lag, rendering)."""

from __future__ import annotations

import json

from mmplan.ops.read import source_position
from mmplan.ops.status import (
    ConnectFacts,
    ConnectorState,
    FlowFacts,
    connect_state,
    connect_status,
    flow_status,
    lag_from,
    render_text,
)

NOW = 1_700_000_000_000
URL = "http://connect:8083"
NAMES = {k: f"a->b-{k}" for k in ("source", "checkpoint", "heartbeat")}


def connectors(**states) -> ConnectFacts:
    """Every connector RUNNING with one running task, except the (state, tasks) given per kind."""
    out = []
    for kind, name in NAMES.items():
        state, tasks = states.get(kind, ("RUNNING", [(0, "RUNNING", None)]))
        out.append(ConnectorState(name, kind, state, None, tasks))
    return ConnectFacts(URL, out)


def base(heartbeat_age_ms: int | None = 500, rpo_ms: int | None = 30_000):
    newest = None if heartbeat_age_ms is None else NOW - heartbeat_age_ms
    return flow_status(FlowFacts(flow="a->b", now_ms=NOW, engine="unknown", newest_heartbeat_ms=newest,
                                 rpo_ms=rpo_ms))


def status(facts: ConnectFacts, age: int | None = 500, lag=None, note="no offsets"):
    return connect_status(base(age), facts, 3000, lag, note)


def test_all_connectors_and_tasks_running_with_fresh_heartbeats_is_running():
    s = status(connectors(checkpoint=("RUNNING", [])), lag={"orders": 3}, note="as of the last flush")
    assert (s.state, s.engine, s.up, s.healthy, s.verdict) == ("running", "connect", True, True, "ok")
    assert "3 connectors and 2 tasks running on http://connect:8083" in s.reason
    doc = s.doc()
    assert doc["lag_total"] == 3 and doc["connect"]["url"] == URL
    assert [c["state"] for c in doc["connect"]["connectors"]] == ["RUNNING"] * 3


def test_running_connectors_with_stale_heartbeats_are_stalled():
    s = status(connectors(), age=10_000)
    assert s.state == "stalled" and not s.up and "10.0s old (limit 3s)" in s.reason
    assert status(connectors(), age=None).state == "stalled"
    assert connect_status(base(None), connectors(), None, None, "").state == "running"  # no heartbeats: not checked


def test_a_failed_task_or_connector_is_failed_with_the_first_line_of_its_trace():
    trace = "org.apache.kafka.connect.errors.ConnectException: boom\n\tat Foo.bar(Foo.java:1)"
    s = status(connectors(source=("RUNNING", [(0, "RUNNING", None), (1, "FAILED", trace)])))
    assert s.state == "failed" and not s.healthy
    assert s.reason.startswith("task a->b-source/1 failed: org.apache.kafka.connect.errors.ConnectException: boom")
    assert "Foo.java" not in s.reason
    s = status(connectors(heartbeat=("FAILED", [])))
    assert s.state == "failed" and "connector a->b-heartbeat failed" in s.reason
    # failed outranks paused
    s = status(connectors(heartbeat=("FAILED", []), source=("PAUSED", [(0, "PAUSED", None)])))
    assert s.state == "failed"


def test_paused_unassigned_and_missing_connectors_are_not_up():
    s = status(connectors(source=("PAUSED", [(0, "PAUSED", None)])))
    assert (s.state, s.up) == ("paused", False) and s.reason == "connector a->b-source paused"
    s = status(connectors(source=("RUNNING", [(0, "UNASSIGNED", None)])))
    assert (s.state, s.up) == ("unassigned", False) and "task a->b-source/0 unassigned" in s.reason
    s = status(connectors(checkpoint=(None, [])))
    assert (s.state, s.up) == ("missing", False)
    assert "connector a->b-checkpoint does not exist on http://connect:8083" in s.reason
    assert s.doc()["connect"]["connectors"][1]["state"] == "MISSING"


def test_an_unreachable_connect_cluster_names_its_url():
    facts = ConnectFacts(URL, unreachable="connection refused")
    state, reason = connect_state(facts)
    assert state == "unreachable"
    assert reason == "Kafka Connect at http://connect:8083 is unreachable: connection refused"
    s = status(facts, note="the Connect cluster did not answer")
    assert not s.up and s.lag is None and s.doc()["lag_note"] == "the Connect cluster did not answer"
    text = render_text([s])
    assert "UNREACHABLE" in text and "http://connect:8083 (unreachable)" in text
    assert "lag          unknown (the Connect cluster did not answer)" in text


def test_an_unreachable_target_stays_unreachable_whatever_connect_says():
    target_down = flow_status(FlowFacts(flow="a->b", now_ms=NOW, engine="unknown", heartbeats_enabled=False,
                                        errors=["cannot read the target b"]), unreachable=True)
    s = connect_status(target_down, connectors(), 3000, None, "")
    assert s.state == "unreachable" and "cannot read the target b" in s.reason and s.engine == "connect"


def test_text_lists_each_connector_and_its_tasks():
    text = render_text([status(connectors(checkpoint=("RUNNING", [])), lag={"orders": 0, "users": 2},
                               note="as of the worker's last offset flush")])
    assert "Flow a->b: RUNNING  (connect; 3 connectors" in text
    assert "a->b-source      RUNNING (tasks: 0 RUNNING)" in text
    assert "a->b-checkpoint  RUNNING (tasks: no tasks)" in text
    assert "lag          2 records (as of the worker's last offset flush)" in text
    assert text.endswith("All 1 flow healthy.\n")


def test_lag_from_end_offsets_and_source_connector_positions():
    ends = {("orders", 0): 10, ("orders", 1): 5, ("users", 0): 3}
    assert lag_from(ends, {("orders", 0): 10, ("orders", 1): 2}) == {"orders": 3, "users": 3}
    # the REST API's offsets (GET /connectors/<name>/offsets) of MirrorSourceConnector: the last replicated offset
    doc = json.loads('{"offsets": [{"partition": {"cluster": "a", "topic": "orders", "partition": 1},'
                     ' "offset": {"offset": 41}}, {"partition": {"cluster": "x", "topic": "o", "partition": 0},'
                     ' "offset": {"offset": 1}}, {"partition": {}, "offset": null}]}')
    found = [source_position(e["partition"], e["offset"], "a") for e in doc["offsets"]]
    assert found == [(("orders", 1), 42), None, None]
