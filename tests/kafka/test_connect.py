"""The connect engine end to end: a real Kafka Connect worker running real MirrorMaker 2 connectors,
planned and applied by mmplan.

Each test has aliases of its own (`e<id>`, `w<id>`) over the shared pair, so its connectors, remote topics
and internal topics never meet another test's; its connectors are deleted at the end.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from click.testing import CliRunner
from kafka.admin import NewTopic

from mmplan.cli import main
from mmplan.cli.import_ import import_
from mmplan.kafka.connect import ConnectClient

pytestmark = pytest.mark.kafka

if import_.name not in main.commands:  # until mmplan/cli/__init__.py registers it
    main.add_command(import_)


class ConnectCase:
    def __init__(self, tmp_path, kafka_pair, url: str):
        self.id = uuid.uuid4().hex[:6]
        self.src, self.dst = f"e{self.id}", f"w{self.id}"
        self.pair, self.url = kafka_pair, url
        self.file = tmp_path / "topology.yaml"
        self.client = ConnectClient([url], timeout=30)
        self.names = [f"{self.src}->{self.dst}-{kind}" for kind in ("checkpoint", "heartbeat", "source")]
        self.write()

    def topic(self, name: str) -> str:
        return f"p{self.id}.{name}"

    def write(self, include: str | None = None) -> None:
        include = include or f"p{self.id}\\\\..*"
        self.file.write_text(f"""\
version: 1
defaults: {{replication_factor: 1}}
clusters:
  {self.src}: {{bootstrap_servers: "{self.pair.cluster('us-east').bootstrap_servers}", brokers: 1}}
  {self.dst}: {{bootstrap_servers: "{self.pair.cluster('us-west').bootstrap_servers}", brokers: 1}}
flows:
  - source: {self.src}
    target: {self.dst}
    engine: connect
    connect: {{urls: ["{self.url}"]}}
    topics: {{include: ["{include}"]}}
    sync_topic_configs: {{enabled: false}}
    refresh_topics: {{interval: 5s}}
""")

    def mmplan(self, *args: str):
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert "Traceback" not in result.output
        return result

    def plan(self) -> tuple[int, dict]:
        result = self.mmplan("plan", str(self.file), "--format", "json")
        return result.exit_code, json.loads(result.output)

    def apply(self):
        result = self.mmplan("apply", str(self.file), "--auto-approve")
        assert result.exit_code == 0, result.output
        return result

    def connector_changes(self, doc: dict) -> list[dict]:
        return [c for c in doc["changes"] if c["connector"]]

    def live(self):
        return {n: s for n, s in self.client.connectors().items() if n in self.names}

    def wait_running(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = self.live()
            # the checkpoint connector starts no task until the source has consumer groups to checkpoint
            if len(live) == 3 and all(s.state == "RUNNING" and all(t[1] == "RUNNING" for t in s.tasks)
                                      and (s.tasks or s.name.endswith("-checkpoint")) for s in live.values()):
                return
            time.sleep(1)
        raise AssertionError(f"connectors not all running: {[(s.name, s.state, s.tasks) for s in live.values()]}")

    def cleanup(self) -> None:
        for name in self.names:
            try:
                self.client.delete(name)
            except Exception:
                pass


@pytest.fixture
def case(tmp_path, kafka_pair, connect_worker):
    c = ConnectCase(tmp_path, kafka_pair, connect_worker)
    yield c
    c.cleanup()


def _records(config: dict, topic: str, want: int, timeout: float = 120) -> int:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, **config, auto_offset_reset="earliest", consumer_timeout_ms=1000)
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < want and time.monotonic() < deadline:
            seen += sum(len(batch) for batch in consumer.poll(timeout_ms=1000).values())
    finally:
        consumer.close()
    return seen


def test_connect_flow_is_planned_applied_and_replicates(case, clients, us_east, us_west):
    topic = case.topic("orders")
    clients.admin(us_east).create_topics([NewTopic(topic, 2, 1)])
    producer = clients.producer(us_east)
    for i in range(100):
        producer.send(topic, key=str(i).encode(), value=f"v{i}".encode())
    producer.flush()
    code, doc = case.plan()
    assert code == 2
    creates = sorted(c["connector"] for c in case.connector_changes(doc) if c["kind"] == "create_connector")
    assert creates == sorted(case.names)
    case.apply()
    case.wait_running()
    assert _records(us_west, f"{case.src}.{topic}", 100) == 100
    code, doc = case.plan()
    assert case.connector_changes(doc) == [] and not [p for p in doc["problems"] if "connector" in p["code"]]


def test_a_changed_filter_is_planned_as_a_config_change_and_applied(case):
    case.apply()
    case.write(include=f"p{case.id}\\\\.only")
    code, doc = case.plan()
    changes = {c["connector"]: c for c in case.connector_changes(doc)}
    source = changes[f"{case.src}->{case.dst}-source"]
    assert code == 2 and source["kind"] == "update_connector"
    assert (source["before"]["topics"], source["after"]["topics"]) == (f"p{case.id}\\..*", f"p{case.id}\\.only")
    case.apply()
    assert case.live()[f"{case.src}->{case.dst}-source"].config["topics"] == f"p{case.id}\\.only"
    assert case.connector_changes(case.plan()[1]) == []


def test_a_connector_changed_by_hand_is_planned_back(case):
    case.apply()
    name = f"{case.src}->{case.dst}-checkpoint"
    config = {**case.live()[name].config, "emit.checkpoints.interval.seconds": "999"}
    case.client.put_config(name, config)
    [change] = case.connector_changes(case.plan()[1])
    assert change["connector"] == name and change["kind"] == "update_connector"
    assert (change["before"]["emit.checkpoints.interval.seconds"], change["after"]["emit.checkpoints.interval.seconds"]
            ) == ("999", "60")
    case.apply()
    assert case.live()[name].config["emit.checkpoints.interval.seconds"] == "60"


def test_a_failed_task_is_a_problem(case):
    case.apply()
    name = f"{case.src}->{case.dst}-source"
    case.wait_running()
    case.client.put_config(name, {**case.live()[name].config, "source.consumer.isolation.level": "bogus"})
    deadline = time.monotonic() + 90
    problems: list = []
    while time.monotonic() < deadline and not problems:
        problems = [p for p in case.plan()[1]["problems"] if p["code"] == "task-failed"]
        time.sleep(1)
    assert problems and name in problems[0]["message"] and problems[0]["severity"] == "warning"
    case.apply()  # the planned config change is the fix
    case.wait_running()


def test_import_reads_a_running_connect_cluster(case, tmp_path):
    case.apply()
    case.wait_running()  # the REST API lists a new connector once a worker has read its config back
    out = tmp_path / "imported.yaml"
    result = case.mmplan("import", "--connect", case.url, "--out", str(out))
    assert result.exit_code == 0, result.output
    from mmplan.topology.loader import load_topology

    topology = load_topology(out).topology
    [flow] = [f for f in topology.flows if (f.source, f.target) == (case.src, case.dst)]
    assert flow.engine.value == "connect" and flow.connect.urls == [case.url]
    assert flow.topics.include == [f"p{case.id}\\..*"]


def test_a_saved_plan_applies_its_connectors_and_refuses_a_changed_connect_cluster(case, tmp_path):
    saved = tmp_path / "plan.json"
    assert case.mmplan("plan", str(case.file), "--out", str(saved)).exit_code == 2
    result = case.mmplan("apply", "--plan", str(saved), "--auto-approve")
    assert result.exit_code == 0, result.output
    case.wait_running()
    case.write(include=f"p{case.id}\\\\.other")
    assert case.mmplan("plan", str(case.file), "--out", str(saved)).exit_code == 2
    name = f"{case.src}->{case.dst}-source"
    case.client.put_config(name, {**case.live()[name].config, "tasks.max": "2"})
    result = case.mmplan("apply", "--plan", str(saved), "--auto-approve")
    assert result.exit_code == 1 and case.url in result.output
