"""The client layer's group, offset and record reads against real sandbox brokers."""

from __future__ import annotations

import pytest
from kafka import TopicPartition

from mmplan.kafka.admin import Admin
from mmplan.kafka.records import producer, read_topic
from mmplan.state.snapshot import TopicState
from mmplan.topology.loader import load_topology

pytestmark = pytest.mark.kafka


@pytest.fixture
def east(kafka_pair):
    cluster = load_topology(kafka_pair.dir / "topology.yaml").topology.clusters["us-east"]
    with Admin.connect("us-east", cluster, timeout=10) as admin:
        yield admin, cluster


def test_records_offsets_and_group_commits(east, unique):
    admin, cluster = east
    topic, group = unique.topic(), unique.group()
    assert admin.create_topics([TopicState(name=topic, partitions=2, replication_factor=1)]) == {topic: None}
    assert read_topic("us-east", cluster, topic) == []
    p = producer("us-east", cluster)
    for i in range(5):
        p.send(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % 2, headers=[("h", b"x")])
    p.flush()
    p.close()
    records = read_topic("us-east", cluster, topic)
    assert [(r.partition, r.offset, r.key, r.value) for r in records] == [
        (0, 0, b"k0", b"v0"), (0, 1, b"k2", b"v2"), (0, 2, b"k4", b"v4"), (1, 0, b"k1", b"v1"), (1, 1, b"k3", b"v3")]
    assert records[0].headers == (("h", b"x"),)
    assert [r.offset for r in read_topic("us-east", cluster, topic, start={0: 2, 1: 2})] == [2]
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    assert admin.end_offsets(tps) == {tps[0]: 3, tps[1]: 2}
    assert admin.start_offsets(tps) == {tps[0]: 0, tps[1]: 0}
    assert admin.partitions_of([topic, "no-such-topic-" + topic]) == {topic: 2}

    assert admin.group_offsets(group) == {}
    assert admin.group_members(group) == ("Dead", 0)
    assert admin.commit_group_offsets(group, {tps[0]: 2, tps[1]: 1}) == {tps[0]: None, tps[1]: None}
    assert admin.group_offsets(group) == {tps[0]: 2, tps[1]: 1}
    assert admin.group_members(group) == ("Empty", 0)
    assert group in admin.groups()
