"""Client operations mmplan relies on, against the session's real us-east/us-west clusters."""

from __future__ import annotations

import time

import pytest
from kafka import TopicPartition
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)

pytestmark = pytest.mark.kafka


def _eventually(read, expected=None, timeout: float = 15.0):
    """Poll `read()` until it returns `expected` (or anything truthy when None); return the last value.

    Brokers answer describes from their metadata cache, which follows the controller's writes
    (config changes, ACLs, new partitions) a moment later.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        done = value == expected if expected is not None else bool(value)
        if done or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _topic_configs(admin, topic: str) -> dict[str, str]:
    """The configs set on the topic itself."""
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = described["topic"][topic]
    return {k: v["value"] for k, v in entries.items() if v["config_source"] == "DYNAMIC_TOPIC_CONFIG"}


def test_each_cluster_reports_its_broker_and_recorded_id(kafka_pair, us_east, us_west, clients):
    for alias, cfg in (("us-east", us_east), ("us-west", us_west)):
        info = clients.admin(cfg).describe_cluster()
        assert [b["broker_id"] for b in info["brokers"]] == [1]
        assert info["cluster_id"] == kafka_pair.cluster(alias).cluster_id
    assert kafka_pair.cluster("us-east").cluster_id != kafka_pair.cluster("us-west").cluster_id


def test_create_topic_with_configs_then_alter_one(us_east, clients, unique):
    admin = clients.admin(us_east)
    topic = unique.topic()
    configs = {"retention.ms": "3600000", "cleanup.policy": "compact"}
    result = admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1, "configs": configs}},
                                 wait_for_metadata=True)
    assert result["topics"][0]["error_code"] == 0
    assert _topic_configs(admin, topic) == {"retention.ms": "3600000", "cleanup.policy": "compact"}

    altered = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"retention.ms": "7200000"})])
    assert altered == {"topic": {topic: "OK"}}
    want = {"retention.ms": "7200000", "cleanup.policy": "compact"}
    assert _eventually(lambda: _topic_configs(admin, topic), want) == want


def test_add_partitions(us_east, clients, unique):
    admin = clients.admin(us_east)
    topic = unique.topic()
    admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True)
    response = admin.create_partitions({topic: 4})
    assert [r.error_code for r in response.results] == [0]
    def partitions():
        return sorted(p["partition_index"] for p in admin.describe_topics([topic])[0]["partitions"])

    assert _eventually(partitions, [0, 1, 2, 3]) == [0, 1, 2, 3]


def test_topics_of_one_cluster_are_not_on_the_other(us_east, us_west, clients, unique):
    topic = unique.topic()
    east = clients.admin(us_east)
    east.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True)
    assert topic in east.list_topics()
    assert topic not in clients.admin(us_west).list_topics()


def test_acl_create_describe_delete(us_west, clients, unique):
    admin = clients.admin(us_west)
    topic = unique.topic()
    pattern = ResourcePattern(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL)
    acl = ACL(principal="User:alice", host="*", operation=ACLOperation.READ,
              permission_type=ACLPermissionType.ALLOW, resource_pattern=pattern)
    match = ACLFilter(principal="User:alice", host="*", operation=ACLOperation.ANY,
                      permission_type=ACLPermissionType.ANY,
                      resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, topic,
                                                             ACLResourcePatternType.LITERAL))
    created = admin.create_acls([acl])
    assert created["failed"] == [] and len(created["succeeded"]) == 1

    found = _eventually(lambda: admin.describe_acls(match)[0])
    assert [(a.principal, a.operation, a.permission_type) for a in found] == \
        [("User:alice", ACLOperation.READ, ACLPermissionType.ALLOW)]

    [(_, deleted, error)] = admin.delete_acls([match])
    assert error.errno == 0 and len(deleted) == 1
    assert _eventually(lambda: admin.describe_acls(match)[0], []) == []


def test_produce_and_consume_keys_and_headers_and_commit(us_east, clients, unique):
    admin = clients.admin(us_east)
    topic, group = unique.topic(), unique.group()
    admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}}, wait_for_metadata=True)
    producer = clients.producer(us_east, acks="all")
    sent = [(f"k{i}".encode(), f"v{i}".encode(), [("trace", f"h{i}".encode()), ("n", b"x")])
            for i in range(20)]
    for key, value, headers in sent:
        producer.send(topic, key=key, value=value, headers=headers)
    producer.flush(timeout=30)

    consumer = clients.consumer(us_east, topic, group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=False, consumer_timeout_ms=15000)
    received = []
    for record in consumer:
        received.append((record.key, record.value, record.headers))
        if len(received) == len(sent):
            break
    assert sorted(received) == sorted(sent)
    consumer.commit()

    offsets = admin.list_group_offsets({group: None})[group]
    ends = consumer.end_offsets([TopicPartition(topic, p) for p in (0, 1)])
    assert {tp: om.offset for tp, om in offsets.items()} == ends
    assert sum(ends.values()) == len(sent)
