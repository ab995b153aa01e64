"""plan and apply end to end on real sandbox clusters, through the `mmplan` entry point.

Each test gives the shared clusters aliases of its own (`e<id>`, `w<id>`), so remote topics
(`e<id>.orders`), orphans and internal topics never touch another test's.
"""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from isolated import pair_topology
from kafka.admin import ACL, ACLOperation, ACLPermissionType, NewTopic, ResourcePattern, ResourceType

from mmplan.cli import main

pytestmark = pytest.mark.kafka


class Case:
    """One test's topology over the shared pair, and shortcuts to run mmplan on it."""

    def __init__(self, tmp_path, kafka_pair, clients, **flow):
        self.id = uuid.uuid4().hex[:6]
        self.src, self.dst = f"e{self.id}", f"w{self.id}"
        self.prefix = f"p{self.id}"
        self.east = clients.admin(kafka_pair.kafka_config("us-east"))
        self.west = clients.admin(kafka_pair.kafka_config("us-west"))
        self.pair = kafka_pair
        self.file = tmp_path / "topology.yaml"
        self.write(**flow)

    def write(self, rf: int = 1, brokers_west: str | None = None, extra: str = "", **_) -> None:
        self.file.write_text(pair_topology(self.pair, self.id, west=brokers_west, rf=rf, flow_extra=extra))

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def remote(self, name: str) -> str:
        return f"{self.src}.{self.prefix}.{name}"

    def mmplan(self, *args: str):
        result = CliRunner().invoke(main, [*args], catch_exceptions=False)
        assert "Traceback" not in result.output
        return result

    def plan(self, *args: str):
        result = self.mmplan("plan", str(self.file), "--format", "json", *args)
        return result.exit_code, json.loads(result.output) if result.output.startswith("{") else result.output

    def apply(self, *args: str):
        return self.mmplan("apply", str(self.file), "--auto-approve", *args)


def create(admin, name: str, partitions: int = 1, **configs: str) -> None:
    admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])


def partitions(admin, name: str) -> int:
    [desc] = admin.describe_topics([name])
    return len(desc["partitions"])


def names(doc) -> set[tuple[str, str]]:
    return {(c["kind"], c["topic"]) for c in doc["changes"]}


@pytest.fixture
def case(tmp_path, kafka_pair, clients):
    return Case(tmp_path, kafka_pair, clients)


def test_fresh_target_then_nothing_to_do(case):
    create(case.east, case.topic("orders"), 3, **{"retention.ms": "3600000"})
    case.east.create_acls([ACL(principal="User:app", host="*", operation=ACLOperation.ALL,
                               permission_type=ACLPermissionType.ALLOW,
                               resource_pattern=ResourcePattern(ResourceType.TOPIC, case.topic("orders")))])
    code, doc = case.plan()
    assert code == 2
    assert {("create_topic", case.remote("orders")), ("create_topic", f"{case.src}.checkpoints.internal"),
            ("create_topic", f"mm2-offset-syncs.{case.dst}.internal"), ("create_topic", f"hb-{case.id}"),
            ("create_topic", f"{case.src}.hb-{case.id}"), ("create_acl", case.remote("orders")),
            ("create_topic", f"mm2-mmplan-status.{case.src}.internal")} == names(doc)

    result = case.apply()
    assert result.exit_code == 0, result.output
    assert "Applied 7 of 7 changes." in result.output
    assert partitions(case.west, case.remote("orders")) == 3
    acls, _ = case.west.describe_acls(_acl_filter(case.remote("orders")))
    assert [(a.operation, a.permission_type) for a in acls] == [(ACLOperation.READ, ACLPermissionType.ALLOW)]

    assert case.plan()[0] == 0
    again = case.apply()
    assert again.exit_code == 0 and "No changes." in again.output


def _acl_filter(topic: str):
    from kafka.admin import ACLFilter, ACLResourcePatternType, ResourcePatternFilter

    return ACLFilter(principal=None, host="*", operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
                     resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL))


def test_drift_new_topic_and_partition_increase(case):
    create(case.east, case.topic("a"), 1, **{"retention.ms": "3600000"})
    assert case.apply().exit_code == 0
    # drift on the target, a new source topic, more source partitions
    from kafka.admin import ConfigResource, ConfigResourceType
    case.west.alter_configs([ConfigResource(ConfigResourceType.TOPIC, case.remote("a"),
                                            configs={"retention.ms": "1000", "segment.ms": "600000"})],
                            raise_on_unknown=False)
    create(case.east, case.topic("b"), 2)
    case.east.create_partitions({case.topic("a"): 3})
    code, doc = case.plan()
    assert code == 2
    got = {(c["kind"], c["topic"], c["config"], json.dumps(c["before"]), json.dumps(c["after"]))
           for c in doc["changes"]}
    assert got == {
        ("set_config", case.remote("a"), "retention.ms", '"1000"', '"3600000"'),
        ("unset_config", case.remote("a"), "segment.ms", '"600000"', "null"),
        ("add_partitions", case.remote("a"), None, "1", "3"),
        ("create_topic", case.remote("b"), None, "null",
         json.dumps({"partitions": 2, "replication_factor": 1, "configs": {}})),
    }
    assert case.apply().exit_code == 0
    assert partitions(case.west, case.remote("a")) == 3
    assert case.plan()[0] == 0


def test_orphan_shown_then_deleted_only_with_flag(case):
    create(case.east, case.topic("keep"))
    create(case.east, case.topic("gone"))
    assert case.apply().exit_code == 0
    case.east.delete_topics([case.topic("gone")])
    _wait_gone(case.east, case.topic("gone"))
    code, doc = case.plan()
    [orphan] = doc["changes"]
    assert (code, orphan["kind"], orphan["topic"], orphan["held"]) == (0, "delete_topic", case.remote("gone"), True)
    result = case.apply()
    assert result.exit_code == 0 and "held" in result.output
    assert case.remote("gone") in case.west.list_topics()
    result = case.apply("--allow-delete")
    assert result.exit_code == 0, result.output
    _wait_gone(case.west, case.remote("gone"))
    assert case.remote("keep") in case.west.list_topics()


def _wait_gone(admin, name: str) -> None:
    import time

    deadline = time.monotonic() + 15
    while name in admin.list_topics():
        assert time.monotonic() < deadline, f"{name} was not deleted"
        time.sleep(0.2)


def test_hand_made_target_topic_with_wrong_partition_count(case):
    create(case.east, case.topic("x"), 2)
    create(case.west, case.remote("x"), 5)
    result = case.mmplan("plan", str(case.file))
    assert "warning[partition-mismatch]" in result.output and "has 5 partitions, its source has 2" in result.output
    case.apply()
    assert partitions(case.west, case.remote("x")) == 5


def test_replication_factor_above_live_brokers(case):
    case.write(rf=1, extra="    replication_factor: 3\n")
    case.file.write_text(case.file.read_text().replace("brokers: 1", "brokers: 3"))
    code, out = case.plan()
    assert code == 1
    assert "replication-factor" in {p["code"] for p in out["problems"]}
    assert case.apply().exit_code == 1


def test_stale_saved_plan_is_refused(case, tmp_path):
    create(case.east, case.topic("s"))
    saved = tmp_path / "plan.json"
    result = case.mmplan("plan", str(case.file), "--out", str(saved))
    assert result.exit_code == 2 and saved.exists()
    create(case.east, case.topic("t"))  # the world moves on
    result = case.mmplan("apply", "--plan", str(saved), "--auto-approve")
    assert result.exit_code == 1
    assert "changed since this plan was made" in result.output and case.remote("t") in result.output
    assert case.remote("s") not in case.west.list_topics()
    # a fresh saved plan applies exactly
    result = case.mmplan("plan", str(case.file), "--out", str(saved))
    result = case.mmplan("apply", "--plan", str(saved), "--auto-approve")
    assert result.exit_code == 0, result.output
    assert {case.remote("s"), case.remote("t")} <= set(case.west.list_topics())


def test_unreachable_cluster(case):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    case.write(brokers_west=f"127.0.0.1:{port}")
    result = case.mmplan("plan", str(case.file), "--timeout", "3")
    assert result.exit_code == 1
    assert f"cluster {case.dst}" in result.output and "Traceback" not in result.output


def test_apply_without_terminal_needs_auto_approve(case):
    create(case.east, case.topic("q"))
    result = case.mmplan("apply", str(case.file))
    assert result.exit_code == 1 and "--auto-approve" in result.output
    assert case.remote("q") not in case.west.list_topics()


def test_wrong_sasl_credentials(kafka_sasl, kafka_pair, tmp_path, monkeypatch):
    import yaml

    topology = yaml.safe_load((kafka_sasl.dir / "topology.yaml").read_text())
    topology["clusters"]["west"] = {"bootstrap_servers": kafka_pair.cluster("us-west").bootstrap_servers}
    topology["flows"] = [{"source": "secure", "target": "west", "topics": {"include": ["none"]}}]
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(topology))
    monkeypatch.setenv("MMPLAN_SANDBOX_PASSWORD", "wrong-password")
    result = CliRunner().invoke(main, ["plan", str(path), "--timeout", "5"], catch_exceptions=False)
    assert result.exit_code == 1
    assert "wrong-password" not in result.output
    assert "cluster secure" in result.output and "auth" in result.output.lower()
    monkeypatch.setenv("MMPLAN_SANDBOX_PASSWORD", kafka_sasl.password)
    result = CliRunner().invoke(main, ["plan", str(path), "--timeout", "5"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
