"""The sandbox's Connect worker, offline: its properties, its record in the state file, the topology it writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmplan.errors import MmplanError
from mmplan.sandbox import outputs, state
from mmplan.sandbox.connect import worker_properties
from mmplan.sandbox.state import Cluster, ConnectWorker, Node, Sandbox
from mmplan.topology.loader import parse_topology


def sandbox(tmp_path: Path, security: str = "plaintext") -> Sandbox:
    clusters = [Cluster(alias=a, cluster_id=f"id-{a}", nodes=[Node(node_id=1, port=p, internal_port=p + 1)])
                for a, p in (("us-east", 9000), ("us-west", 9100))]
    return Sandbox(dir=tmp_path, kafka_version="4.1.1", security=security, clusters=clusters,
                   connect=ConnectWorker(cluster="us-west", port=8083, pid=123))


def test_worker_keeps_its_topics_on_the_target_and_declares_the_providers(tmp_path):
    props = worker_properties(sandbox(tmp_path), ConnectWorker(cluster="us-west", port=8083))
    assert props["bootstrap.servers"] == "127.0.0.1:9100" and props["listeners"] == "http://127.0.0.1:8083"
    assert props["config.storage.replication.factor"] == "1"
    assert props["config.providers.env.class"].endswith("EnvVarConfigProvider")


def test_worker_needs_a_plaintext_sandbox(tmp_path):
    with pytest.raises(MmplanError, match="plaintext"):
        worker_properties(sandbox(tmp_path, "sasl"), ConnectWorker(cluster="us-west", port=8083))


def test_the_worker_is_recorded_and_read_back(tmp_path):
    sb = sandbox(tmp_path)
    state.save(sb)
    assert state.load(tmp_path).connect == ConnectWorker(cluster="us-west", port=8083, pid=123)


def test_topology_runs_the_flow_on_the_worker(tmp_path):
    data = outputs.topology(sandbox(tmp_path))
    assert data["flows"][0]["engine"] == "connect" and data["flows"][0]["connect"] == {"urls": ["http://127.0.0.1:8083"]}
    parse_topology(yaml.safe_dump(data))
