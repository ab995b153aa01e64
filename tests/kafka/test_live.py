"""read_snapshot on real sandbox clusters: concurrent reads, identity checks, unreachable clusters."""

from __future__ import annotations

import socket
import time

import pytest

from mmplan.errors import MmplanError
from mmplan.kafka.admin import Admin
from mmplan.state.live import read_snapshot
from mmplan.state.snapshot import TopicState
from mmplan.topology.loader import load_topology

pytestmark = pytest.mark.kafka


@pytest.fixture
def topology(kafka_pair):
    return load_topology(kafka_pair.dir / "topology.yaml").topology


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _with(topology, **clusters):
    """The topology with clusters added or replaced: alias -> (base alias, changed fields)."""
    merged = dict(topology.clusters)
    for alias, (base, changes) in clusters.items():
        merged[alias.replace("_", "-")] = topology.clusters[base].model_copy(update=changes)
    return topology.model_copy(update={"clusters": merged})


def test_reads_both_clusters(topology, kafka_pair, unique):
    topic = unique.topic()
    with Admin.connect("us-east", topology.clusters["us-east"]) as admin:
        admin.create_topics([TopicState(name=topic, partitions=2, replication_factor=1,
                                        configs={"retention.ms": "86400000"})])
    snapshot = read_snapshot(topology, ["us-east", "us-west"])
    assert snapshot.unreachable == {}
    assert set(snapshot.clusters) == {"us-east", "us-west"}
    for alias, state in snapshot.clusters.items():
        assert state.cluster_id == kafka_pair.cluster(alias).cluster_id
    assert snapshot.clusters["us-east"].topics[topic].configs == {"retention.ms": "86400000"}
    assert topic not in snapshot.clusters["us-west"].topics


def test_unreachable_clusters_are_recorded_and_read_concurrently(topology):
    down = {"bootstrap_servers": [f"127.0.0.1:{_free_port()}"], "cluster_id": None}
    changed = _with(topology, gone_a=("us-east", down), gone_b=("us-east", down))
    start = time.monotonic()
    snapshot = read_snapshot(changed, ["us-west", "gone-a", "gone-b"], timeout=2)
    elapsed = time.monotonic() - start
    assert list(snapshot.clusters) == ["us-west"]
    assert set(snapshot.unreachable) == {"gone-a", "gone-b"}
    assert "connection refused" in snapshot.unreachable["gone-a"]
    assert elapsed < 3.5  # two 2-second connection failures side by side, not one after the other


def test_cluster_id_mismatch_stops_before_anything_is_read(topology, kafka_pair, monkeypatch):
    def must_not_read(self, acls=True):
        raise AssertionError("read_state called despite a cluster id mismatch")

    monkeypatch.setattr(Admin, "read_state", must_not_read)
    wrong = _with(topology, us_west=("us-west", {"cluster_id": "AAAAAAAAAAAAAAAAAAAAAA"}))
    with pytest.raises(MmplanError) as err:
        read_snapshot(wrong, ["us-east", "us-west"])
    assert err.value.where == "cluster us-west"
    assert "AAAAAAAAAAAAAAAAAAAAAA" in err.value.message
    assert kafka_pair.cluster("us-west").cluster_id in err.value.message


def test_two_aliases_for_one_cluster_are_refused(topology):
    twin = _with(topology, east_again=("us-east", {"cluster_id": None}))
    with pytest.raises(MmplanError) as err:
        read_snapshot(twin, ["us-east", "east-again"])
    assert "same live cluster" in err.value.message


def test_unknown_alias_is_an_error(topology):
    with pytest.raises(MmplanError):
        read_snapshot(topology, ["nowhere"])
