"""The same client operations over the SCRAM (SASL_PLAINTEXT) and the TLS listener."""

from __future__ import annotations

import time

import pytest
import yaml
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)
from kafka.errors import KafkaError

from mmplan.sandbox import PASSWORD_VAR

pytestmark = pytest.mark.kafka


def _round_trip(cfg: dict, clients, unique) -> None:
    """Create a topic that has an ACL for someone else, then produce and consume it.

    With an ACL on the topic, `allow.everyone.if.no.acl.found` no longer applies: this works only
    because the sandbox user (User:mmplan) is a super user.
    """
    admin = clients.admin(cfg)
    assert [b["broker_id"] for b in admin.describe_cluster()["brokers"]] == [1]
    topic = unique.topic()
    admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True)
    pattern = ResourcePattern(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL)
    acl = ACL(principal="User:alice", host="*", operation=ACLOperation.READ,
              permission_type=ACLPermissionType.ALLOW, resource_pattern=pattern)
    assert admin.create_acls([acl])["failed"] == []
    deadline = time.monotonic() + 15  # the broker applies the ACL from the metadata log a moment later
    while not admin.describe_acls(ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                                            permission_type=ACLPermissionType.ANY,
                                            resource_pattern=pattern))[0]:
        assert time.monotonic() < deadline, "the ACL never showed up"
        time.sleep(0.1)
    producer = clients.producer(cfg, acks="all")
    producer.send(topic, key=b"k", value=b"v", headers=[("h", b"1")])
    producer.flush(timeout=30)
    consumer = clients.consumer(cfg, topic, group_id=unique.group(), auto_offset_reset="earliest",
                                consumer_timeout_ms=15000)
    record = next(iter(consumer))
    assert (record.key, record.value, record.headers) == (b"k", b"v", [("h", b"1")])


def _refused(cfg: dict) -> None:
    from kafka import KafkaAdminClient

    with pytest.raises(KafkaError):
        KafkaAdminClient(**cfg, bootstrap_timeout_ms=3000, request_timeout_ms=3000).close()


def _written_files(sb) -> tuple[dict, str]:
    topology = yaml.safe_load((sb.dir / "topology.yaml").read_text())
    env = (sb.dir / "sandbox.env").read_text()
    assert sb.password not in (sb.dir / "topology.yaml").read_text()
    assert env == f"export {PASSWORD_VAR}={sb.password}\n"
    assert (sb.dir / "sandbox.env").stat().st_mode & 0o077 == 0
    return topology["clusters"]["secure"]["security"], env


def test_sasl_scram_listener(kafka_sasl, clients, unique):
    cfg = kafka_sasl.kafka_config("secure")
    assert cfg["security_protocol"] == "SASL_PLAINTEXT" and cfg["sasl_mechanism"] == "SCRAM-SHA-512"
    _round_trip(cfg, clients, unique)
    _refused({**cfg, "sasl_plain_password": "wrong-password"})
    _refused({**cfg, "security_protocol": "PLAINTEXT"})
    security, _ = _written_files(kafka_sasl)
    assert security == {"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                        "sasl_username": "mmplan", "sasl_password": f"${{{PASSWORD_VAR}}}"}


def test_tls_listener_with_client_certificate(kafka_tls, clients, unique):
    cfg = kafka_tls.kafka_config("secure")
    assert cfg["security_protocol"] == "SSL"
    _round_trip(cfg, clients, unique)
    _refused({k: v for k, v in cfg.items() if k not in ("ssl_certfile", "ssl_keyfile", "ssl_password")})
    _refused({**cfg, "security_protocol": "PLAINTEXT"})
    security, _ = _written_files(kafka_tls)
    assert security["protocol"] == "SSL" and security["ssl_password"] == f"${{{PASSWORD_VAR}}}"
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        assert security[key] == cfg[key]

