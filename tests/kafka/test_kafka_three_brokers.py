"""A three-broker cluster, so replication factor 3 is real."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.kafka


def test_three_brokers_registered_and_rf3_topic(kafka_three, clients, unique):
    cfg = kafka_three.kafka_config("triple")
    admin = clients.admin(cfg)
    assert sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"]) == [1, 2, 3]

    topic = unique.topic()
    admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 3,
                                 "configs": {"min.insync.replicas": "2"}}}, wait_for_metadata=True)
    partitions = admin.describe_topics([topic])[0]["partitions"]
    assert len(partitions) == 3
    for p in partitions:
        assert sorted(p["replica_nodes"]) == [1, 2, 3]
        assert sorted(p["isr_nodes"]) == [1, 2, 3]

    producer = clients.producer(cfg, acks="all")
    for i in range(30):
        producer.send(topic, key=str(i).encode(), value=b"x" * 100)
    producer.flush(timeout=30)
    consumer = clients.consumer(cfg, topic, auto_offset_reset="earliest", consumer_timeout_ms=15000)
    keys = set()
    for record in consumer:
        keys.add(record.key)
        if len(keys) == 30:
            break
    assert keys == {str(i).encode() for i in range(30)}


def test_rf_above_broker_count_is_refused(kafka_three, clients, unique):
    from kafka.errors import InvalidReplicationFactorError

    admin = clients.admin(kafka_three.kafka_config("triple"))
    with pytest.raises(InvalidReplicationFactorError):
        admin.create_topics({unique.topic(): {"num_partitions": 1, "replication_factor": 4}})
