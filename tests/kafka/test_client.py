"""mmplan's admin client against real sandbox brokers: batched reads, per-resource writes, connection errors."""

from __future__ import annotations

import socket
import time

import pytest

from mmplan.errors import MmplanError
from mmplan.kafka.admin import Admin
from mmplan.sandbox import PASSWORD_VAR
from mmplan.state.snapshot import AclBinding, TopicState
from mmplan.topology.loader import load_topology

pytestmark = pytest.mark.kafka


def _cluster(sb, alias: str):
    return load_topology(sb.dir / "topology.yaml").topology.clusters[alias]


@pytest.fixture
def east(kafka_pair):
    with Admin.connect("us-east", _cluster(kafka_pair, "us-east"), timeout=10) as admin:
        yield admin


def _topic(name: str, partitions: int = 1, **configs: str) -> TopicState:
    return TopicState(name=name, partitions=partitions, replication_factor=1, configs=configs)


def test_read_state_has_topics_with_only_their_own_configs(east, kafka_pair, unique):
    with_config, plain = unique.topic(), unique.topic()
    assert east.create_topics([_topic(with_config, 3, **{"retention.ms": "3600000"}), _topic(plain)]) == {
        with_config: None, plain: None}
    before = east.requests
    state = east.read_state()
    assert east.requests - before == 3  # metadata, describe configs, describe ACLs: one each
    assert state.alias == "us-east" and state.brokers == 1
    assert state.cluster_id == kafka_pair.cluster("us-east").cluster_id
    # The sandbox sets min.insync.replicas as a dynamic broker default: it must not show up as a topic config.
    assert state.topics[with_config] == TopicState(name=with_config, partitions=3, replication_factor=1,
                                                   configs={"retention.ms": "3600000"})
    assert state.topics[plain].configs == {}
    assert state.acls_readable
    assert east.cluster_info() == (state.cluster_id, 1)


def test_create_topics_reports_each_topic(east, unique):
    existing, new, too_many_replicas = unique.topic(), unique.topic(), unique.topic()
    assert east.create_topics([_topic(existing)]) == {existing: None}
    before = east.requests
    result = east.create_topics([_topic(existing), _topic(new),
                                 TopicState(name=too_many_replicas, partitions=1, replication_factor=3)])
    assert 2 <= east.requests - before <= 4  # one CreateTopics, then Metadata until the new topic shows
    assert result[new] is None
    assert "TOPIC_ALREADY_EXISTS" in result[existing]
    assert "INVALID_REPLICATION_FACTOR" in result[too_many_replicas]
    assert east.create_topics([]) == {}


def test_add_partitions_raises_counts_and_refuses_decreases(east, unique):
    grow, shrink = unique.topic(), unique.topic()
    east.create_topics([_topic(grow, 2), _topic(shrink, 3)])
    result = east.add_partitions({grow: 5, shrink: 1, unique.topic(): 2})
    assert result[grow] is None
    assert "INVALID_PARTITIONS" in result[shrink]
    assert [e for e in result.values() if e and "UNKNOWN_TOPIC_OR_PARTITION" in e]
    topics = east.read_state(acls=False).topics
    assert (topics[grow].partitions, topics[shrink].partitions) == (5, 3)


def test_alter_topic_configs_sets_and_deletes_in_one_request(east, unique):
    a, b = unique.topic(), unique.topic()
    east.create_topics([_topic(a, **{"retention.ms": "1000000", "cleanup.policy": "compact"}), _topic(b)])
    before = east.requests
    result = east.alter_topic_configs({a: ({"retention.ms": "2000000"}, ["cleanup.policy"]),
                                       b: ({"no.such.config": "1"}, [])})
    assert 2 <= east.requests - before <= 4  # one IncrementalAlterConfigs, then DescribeConfigs until it shows
    assert result[a] is None
    assert "no.such.config" in result[b] and "INVALID_CONFIG" in result[b]
    topics = east.read_state(acls=False).topics
    assert topics[a].configs == {"retention.ms": "2000000"}
    assert topics[b].configs == {}


def test_acls_created_read_and_deleted(east, unique):
    topic = unique.topic()
    read = AclBinding(topic=topic, principal="User:alice", operation="READ")
    prefixed = AclBinding(topic=topic, pattern_type="PREFIXED", principal="User:bob", operation="DESCRIBE",
                          permission="DENY")
    bad = AclBinding(topic=topic, principal="alice", operation="READ")  # no principal type
    result = east.create_acls([read, bad, prefixed])
    assert result[0] is None and result[2] is None and "principal" in result[1]
    mine = {a for a in east.read_state().acls if a.topic == topic}
    assert mine == {read, prefixed}
    assert east.delete_acls([read, prefixed]) == [None, None]
    assert not [a for a in east.read_state().acls if a.topic == topic]


def test_delete_topics_reports_each_topic(east, unique):
    topic, missing = unique.topic(), unique.topic()
    east.create_topics([_topic(topic)])
    result = east.delete_topics([topic, missing])
    assert result[topic] is None and "UNKNOWN_TOPIC_OR_PARTITION" in result[missing]
    deadline = time.monotonic() + 10
    while topic in east.read_state(acls=False).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    assert topic not in east.read_state(acls=False).topics


def test_unreachable_port_fails_within_the_timeout(kafka_pair):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = _cluster(kafka_pair, "us-east").model_copy(update={"bootstrap_servers": [f"127.0.0.1:{port}"]})
    start = time.monotonic()
    with pytest.raises(MmplanError) as err:
        Admin.connect("nowhere", cluster, timeout=2)
    assert time.monotonic() - start < 4
    assert err.value.where == "cluster nowhere"
    assert "connection refused" in err.value.message and err.value.hint


def test_wrong_sasl_password_says_authentication_failed(kafka_sasl, monkeypatch):
    cluster = _cluster(kafka_sasl, "secure")
    monkeypatch.setenv(PASSWORD_VAR, "not-the-password")
    with pytest.raises(MmplanError) as err:
        Admin.connect("secure", cluster, timeout=2)
    assert "SASL authentication failed" in err.value.message
    assert "not-the-password" not in err.value.render()
    monkeypatch.setenv(PASSWORD_VAR, kafka_sasl.password)
    with Admin.connect("secure", cluster, timeout=10) as admin:
        assert admin.cluster_info()[1] == 1


def test_sasl_client_on_a_plaintext_listener_names_the_protocol(kafka_pair, kafka_sasl, monkeypatch):
    monkeypatch.setenv(PASSWORD_VAR, kafka_sasl.password)
    cluster = _cluster(kafka_pair, "us-east").model_copy(update={"security": _cluster(kafka_sasl, "secure").security})
    with pytest.raises(MmplanError) as err:
        Admin.connect("us-east", cluster, timeout=2)
    assert "does not use SASL" in err.value.message


@pytest.mark.parametrize("cafile", [None, "client.pem"], ids=["missing-ca", "wrong-ca"])
def test_tls_with_an_untrusted_broker_certificate_names_tls(kafka_tls, monkeypatch, cafile):
    monkeypatch.setenv(PASSWORD_VAR, kafka_tls.password)
    cluster = _cluster(kafka_tls, "secure")
    security = cluster.security.model_copy(update={"ssl_cafile": cafile and str(kafka_tls.tls_dir / cafile)})
    with pytest.raises(MmplanError) as err:
        Admin.connect("secure", cluster.model_copy(update={"security": security}), timeout=2)
    assert "TLS" in err.value.message and "not trusted" in err.value.message
    assert "ssl_cafile" in err.value.hint
    with Admin.connect("secure", cluster, timeout=10) as admin:
        assert admin.cluster_info()[1] == 1


def test_tls_with_a_wrong_key_password_fails_before_connecting(kafka_tls, monkeypatch):
    monkeypatch.setenv(PASSWORD_VAR, "wrong")
    with pytest.raises(MmplanError) as err:
        Admin.connect("secure", _cluster(kafka_tls, "secure"), timeout=2)
    assert "TLS" in err.value.message and "ssl_password" in err.value.hint
