"""Saved plans: round trip, secrets, tampering, and files that are not plans."""

from __future__ import annotations

import json

import pytest
from builders import cluster, compiled, snapshot, topic

from mmplan.errors import MmplanError
from mmplan.plan.diff import compute_plan
from mmplan.plan.saved import MASK, load_plan, save_plan
from mmplan.topology.loader import parse_topology

SECURE = """\
version: 1
clusters:
  us-east: {bootstrap_servers: e:9092, brokers: 1, security: {protocol: SASL_PLAINTEXT, sasl_mechanism: PLAIN,
            sasl_username: u, sasl_password: '${EAST_PW}'}}
  us-west: {bootstrap_servers: w:9092, brokers: 1, security: {protocol: SASL_PLAINTEXT, sasl_mechanism: PLAIN,
            sasl_username: u, sasl_password: hunter2}}
flows:
  - {source: us-east, target: us-west, replication_factor: 1}
"""


@pytest.fixture
def plan():
    c = compiled()
    return compute_plan(c, list(c.flows), snapshot(cluster("us-east", topic("orders", 2)), cluster("us-west")))


def test_round_trip(tmp_path, plan):
    topology = parse_topology(SECURE).topology
    path = tmp_path / "plan.json"
    save_plan(path, plan, {"us-east": "a" * 64, "us-west": "b" * 64}, topology)
    saved = load_plan(path)
    assert saved.plan == plan
    assert saved.fingerprints == {"us-east": "a" * 64, "us-west": "b" * 64}
    assert saved.topology.clusters["us-east"].security.sasl_password == "${EAST_PW}"


def test_literal_secrets_never_saved(tmp_path, plan):
    path = tmp_path / "plan.json"
    save_plan(path, plan, {}, parse_topology(SECURE).topology)
    text = path.read_text()
    assert "hunter2" not in text and MASK in text and "${EAST_PW}" in text


def test_edited_topology_is_refused(tmp_path, plan):
    path = tmp_path / "plan.json"
    save_plan(path, plan, {}, parse_topology(SECURE).topology)
    doc = json.loads(path.read_text())
    doc["saved"]["topology"]["clusters"]["us-west"]["bootstrap_servers"] = ["evil:9092"]
    path.write_text(json.dumps(doc))
    with pytest.raises(MmplanError, match="edited"):
        load_plan(path)


@pytest.mark.parametrize("content, message", [
    ("not json", "not a saved plan"),
    ('{"format_version": 1, "changes": []}', "no live-state fingerprint"),
    ("[]", "no live-state fingerprint"),
])
def test_not_a_plan(tmp_path, content, message):
    path = tmp_path / "plan.json"
    path.write_text(content)
    with pytest.raises(MmplanError, match=message):
        load_plan(path)


def test_missing_plan_file(tmp_path):
    with pytest.raises(MmplanError, match="no such plan file"):
        load_plan(tmp_path / "nope.json")


def test_literal_connect_password_never_saved(tmp_path, plan):
    text = SECURE.replace("replication_factor: 1}", "replication_factor: 1, engine: connect, connect: "
                          "{urls: ['http://c:8083'], username: u, password: s3cret}}")
    path = tmp_path / "plan.json"
    save_plan(path, plan, {}, parse_topology(text).topology)
    assert "s3cret" not in path.read_text()
    assert load_plan(path).topology.flows[0].connect.password == MASK
