"""Connect-engine planning and applying, pure: desired connectors against a fake live Connect cluster,
and the REST client against a small local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from builders import cluster, compiled, snapshot, topic

from mmplan.apply.execute import apply_changes
from mmplan.errors import MmplanError
from mmplan.graph.compile import compile_topology
from mmplan.kafka.connect import ConnectClient, ConnectorStatus
from mmplan.mm2.connectors import flow_connectors
from mmplan.plan.diff import compute_plan
from mmplan.plan.model import ChangeKind
from mmplan.plan.render_text import render_text
from mmplan.state.live import ConnectSnapshot
from mmplan.topology.loader import parse_topology

URL = "http://connect:8083"
CONNECT_FLOW = f"  - {{source: us-east, target: us-west, engine: connect, connect: {{urls: ['{URL}']}}}}\n"
NAMES = ["us-east->us-west-checkpoint", "us-east->us-west-heartbeat", "us-east->us-west-source"]


def plan_for(live: dict[str, ConnectorStatus], flows: str = CONNECT_FLOW, allow_delete: bool = False,
             unreachable: dict | None = None):
    c = compiled(flows)
    snap = snapshot(cluster("us-east", topic("orders")), cluster("us-west"))
    return c, compute_plan(c, list(c.flows), snap, allow_delete=allow_delete,
                           connect=ConnectSnapshot(connectors={URL: live}, unreachable=unreachable or {}))


def running(c, **overrides) -> dict[str, ConnectorStatus]:
    configs = flow_connectors(c.topology, c.flows[0])
    out = {}
    for name, config in configs.items():
        config = {**config, "name": name, **overrides.get(name, {})}
        out[name] = ConnectorStatus(name=name, config=config, state="RUNNING", tasks=[(0, "RUNNING", None)])
    return out


def connector_changes(plan):
    return [c for c in plan.changes if c.connector is not None]


def test_new_flow_creates_its_three_connectors():
    _, plan = plan_for({})
    changes = connector_changes(plan)
    assert [(c.kind, c.connector, c.cluster) for c in changes] == [(ChangeKind.create_connector, n, URL) for n in NAMES]
    assert plan.exit_code() == 2
    assert "+ connector us-east->us-west-source (" in render_text(plan)


def test_matching_connectors_are_no_change():
    c = compiled(CONNECT_FLOW)
    _, plan = plan_for(running(c))
    assert connector_changes(plan) == [] and plan.problems == []


def test_a_hand_change_is_planned_back():
    c = compiled(CONNECT_FLOW)
    _, plan = plan_for(running(c, **{NAMES[2]: {"topics": "orders", "tasks.max": "8"}}))
    [change] = connector_changes(plan)
    assert change.kind is ChangeKind.update_connector and change.connector == NAMES[2]
    text = render_text(plan)
    assert "~ connector us-east->us-west-source: tasks.max 8 → (unset); topics orders → .*" in text


def test_a_changed_filter_is_a_config_change():
    c = compiled(CONNECT_FLOW)
    flows = CONNECT_FLOW.replace("engine:", "topics: {include: ['orders.*']}, engine:")
    _, plan = plan_for(running(c), flows=flows)
    changed = {ch.connector: (ch.before["topics"], ch.after["topics"]) for ch in connector_changes(plan)}
    assert changed[NAMES[2]] == (".*", "orders.*")


SECURE = f"""\
version: 1
defaults: {{replication_factor: 1}}
clusters:
  us-east: {{bootstrap_servers: e:9092, security: {{protocol: SASL_PLAINTEXT, sasl_mechanism: PLAIN,
            sasl_username: u, sasl_password: '${{EAST_PW}}'}}}}
  us-west: {{bootstrap_servers: w:9092}}
flows:
  - {{source: us-east, target: us-west, engine: connect, connect: {{urls: ['{URL}'], resolve_secrets: true}}}}
"""


def test_secrets_are_masked_and_a_secret_change_says_so(monkeypatch):
    monkeypatch.setenv("EAST_PW", "hunter2")
    c = compile_topology(parse_topology(SECURE).topology)
    live = running(c, **{NAMES[2]: {"source.cluster.sasl.jaas.config": "old-jaas-with-old-secret"}})
    plan = compute_plan(c, list(c.flows), snapshot(cluster("us-east"), cluster("us-west")),
                        connect=ConnectSnapshot(connectors={URL: live}))
    [change] = connector_changes(plan)
    text = render_text(plan) + json.dumps([ch.model_dump() for ch in plan.changes])
    assert "hunter2" not in text and "old-secret" not in text
    assert "source.cluster.sasl.jaas.config *** → *** (changed)" in text


def test_failed_connector_and_task_are_problems():
    c = compiled(CONNECT_FLOW)
    live = running(c)
    live[NAMES[2]] = ConnectorStatus(name=NAMES[2], config=live[NAMES[2]].config, state="RUNNING",
                                     tasks=[(0, "FAILED", "org.apache.kafka.common.KafkaException: boom\n\tat x")])
    live[NAMES[0]] = ConnectorStatus(name=NAMES[0], config=live[NAMES[0]].config, state="FAILED", trace="bad")
    _, plan = plan_for(live)
    assert sorted(p.code for p in plan.problems) == ["connector-failed", "task-failed"]
    assert any("KafkaException: boom" in p.message for p in plan.problems)
    assert not plan.has_errors  # a config change may be the fix: apply must stay possible


def test_disabled_flow_connectors_are_held_deletes():
    c = compiled(CONNECT_FLOW)
    flows = CONNECT_FLOW.replace("engine:", "enabled: false, engine:")
    _, plan = plan_for(running(c), flows=flows)
    changes = connector_changes(plan)
    assert {ch.kind for ch in changes} == {ChangeKind.delete_connector} and all(ch.held for ch in changes)
    _, plan = plan_for(running(c), flows=flows, allow_delete=True)
    assert len(connector_changes(plan)) == 3 and not any(ch.held for ch in connector_changes(plan))


def test_foreign_connectors_are_left_alone():
    other = ConnectorStatus(name="jdbc", config={"connector.class": "io.confluent.JdbcSource"}, state="RUNNING")
    mm2 = ConnectorStatus(name="x", state="RUNNING", config={
        "connector.class": "org.apache.kafka.connect.mirror.MirrorSourceConnector",
        "source.cluster.alias": "eu", "target.cluster.alias": "us"})
    _, plan = plan_for({"jdbc": other, "x": mm2})
    assert all(ch.kind is ChangeKind.create_connector for ch in connector_changes(plan))


def test_unreachable_connect_is_an_error():
    _, plan = plan_for({}, unreachable={URL: "connection refused"})
    assert [p.code for p in plan.problems] == ["connect-unreachable"] and plan.exit_code() == 1


def test_without_connect_state_connectors_are_not_planned():
    c = compiled(CONNECT_FLOW)
    plan = compute_plan(c, list(c.flows), snapshot(cluster("us-east"), cluster("us-west")))
    assert connector_changes(plan) == []


class _Fake:
    def __init__(self):
        self.puts, self.deletes = [], []

    def put_config(self, name, config):
        if name.endswith("heartbeat"):
            raise MmplanError("PUT /connectors failed: 400 bad config")
        self.puts.append((name, config))

    def delete(self, name):
        self.deletes.append(name)


def test_apply_puts_each_connector_and_reports_each():
    c, plan = plan_for({})
    fake = _Fake()
    configs = flow_connectors(c.topology, c.flows[0])
    outcomes = apply_changes(plan.model_copy(update={"changes": connector_changes(plan)}), {}, connect={URL: fake},
                             connector_configs=configs)
    assert [(o.change.connector, o.ok) for o in outcomes] == [(NAMES[0], True), (NAMES[1], False), (NAMES[2], True)]
    assert fake.puts == [(NAMES[0], configs[NAMES[0]]), (NAMES[2], configs[NAMES[2]])]
    assert "400 bad config" in outcomes[1].error


# -- the REST client against a local server ------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    log_message = lambda *a: None  # noqa: E731
    seen: list = []

    def _reply(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        _Handler.seen.append(("GET", self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != "Basic dTpwdw==":  # u:pw
            return self._reply(401, {"error_code": 401, "message": "Unauthorized"})
        self._reply(200, {"c": {"info": {"name": "c", "config": {"name": "c", "topics": ".*"}, "tasks": []},
                                "status": {"connector": {"state": "RUNNING"},
                                           "tasks": [{"id": 0, "state": "FAILED", "trace": "t"}]}}})

    def do_PUT(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.seen.append(("PUT", self.path, body))
        self._reply(201, {"name": "x"})


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.seen = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_client_reads_connectors_with_basic_auth_and_falls_over_to_the_next_url(server):
    client = ConnectClient(["http://127.0.0.1:1", server], "u", "pw", timeout=1)
    [status] = client.connectors().values()
    assert status.config["topics"] == ".*" and status.tasks == [(0, "FAILED", "t")]
    before = len(_Handler.seen)
    client.put_config("a->b-source", {"k": "v"})  # this server never lists it: the wait gives up after 1 s
    put, *after = _Handler.seen[before:]
    assert put == ("PUT", "/connectors/a-%3Eb-source/config", {"k": "v"})
    assert after and all(m == "GET" and p.startswith("/connectors?expand") for m, p, *_ in after)


def test_client_says_unauthorized_with_the_url_and_no_password(server):
    with pytest.raises(MmplanError) as e:
        ConnectClient([server], "u", "wrong-secret", timeout=2).connectors()
    assert e.value.where == server and "credentials" in e.value.message
    assert "wrong-secret" not in e.value.render()


def test_client_unreachable_names_every_url():
    with pytest.raises(MmplanError, match="unreachable.*127.0.0.1:1"):
        ConnectClient(["http://127.0.0.1:1"], timeout=1).connectors()


def test_connectors_of_a_flow_moved_to_the_daemon_are_held_deletes():
    c = compiled(CONNECT_FLOW)
    other = CONNECT_FLOW.replace("us-east, target: us-west", "us-west, target: us-east")
    moved = CONNECT_FLOW.replace("engine: connect", "engine: daemon") + other
    _, plan = plan_for(running(c), flows=moved)
    deletes = [ch for ch in connector_changes(plan) if ch.kind is ChangeKind.delete_connector]
    assert sorted(ch.connector for ch in deletes) == NAMES
    assert all(ch.held and ch.reason == "orphan: its flow runs on the daemon now" for ch in deletes)
