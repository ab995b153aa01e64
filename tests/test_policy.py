"""MirrorMaker 2 naming rules (mmplan.graph.policy), checked against Kafka 4.1's behaviour."""

import pytest

from mmplan.graph.policy import Hop, ReplicationPolicy, java_split

DEFAULT = ReplicationPolicy("default", "A")
IDENTITY = ReplicationPolicy("identity", "A")


@pytest.mark.parametrize(("topic", "source", "upstream"), [
    ("a.", None, None),          # Java drops the trailing empty string
    (".a", "", "a"),             # but keeps a leading one
    ("a..b", "a", ".b"),
    ("...", None, None),
    ("B.x", "B", "x"),
    ("C.B.x", "C", "B.x"),
    ("x", None, None),
    ("a.b.", "a", "b."),
])
def test_default_topic_source_follows_java_split(topic, source, upstream):
    assert DEFAULT.topic_source(topic) == source
    assert DEFAULT.upstream_topic(topic) == upstream


def test_java_split_drops_only_trailing_empty_strings():
    assert java_split(".a.", ".") == ["", "a"]
    assert java_split("a__b", "__") == ["a", "b"]
    assert java_split("____", "__") == []


def test_default_naming_with_custom_separator():
    policy = ReplicationPolicy("default", "us-east", separator="_")
    assert policy.remote_topic("orders") == "us-east_orders"
    assert policy.topic_source("us-east_orders") == "us-east"
    assert policy.original_topic("B_us-east_orders") == "orders"
    assert policy.topic_source("us-east.orders") is None


def test_identity_keeps_names_but_prefixes_heartbeat_lookalikes():
    assert IDENTITY.remote_topic("orders") == "orders"
    assert IDENTITY.topic_source("orders") == "A"
    assert IDENTITY.upstream_topic("orders") == "orders"
    assert IDENTITY.original_topic("B.orders") == "B.orders"
    # a plain suffix test: anything ending with "heartbeats" is named like the default policy
    assert IDENTITY.remote_topic("heartbeats") == "A.heartbeats"
    assert IDENTITY.remote_topic("myheartbeats") == "A.myheartbeats"
    assert IDENTITY.topic_source("B.heartbeats") == "B"
    assert IDENTITY.topic_source("heartbeats") is None


@pytest.mark.parametrize("policy", [DEFAULT, IDENTITY])
def test_heartbeats_topics(policy):
    assert policy.is_heartbeats_topic("heartbeats")
    assert policy.is_heartbeats_topic("A.heartbeats")
    assert policy.is_heartbeats_topic("B.A.heartbeats")
    assert not policy.is_heartbeats_topic("myheartbeats")
    assert not policy.is_heartbeats_topic("heartbeats.x")


def test_custom_heartbeats_name():
    policy = ReplicationPolicy("identity", "A", heartbeats_topic="mm2-heartbeats")
    assert policy.remote_topic("mm2-heartbeats") == "A.mm2-heartbeats"
    assert policy.is_heartbeats_topic("B.mm2-heartbeats")
    assert not policy.is_heartbeats_topic("B.heartbeats")


@pytest.mark.parametrize(("topic", "internal"), [
    ("__consumer_offsets", True),
    (".hidden", True),
    ("mm2-offset-syncs.B.internal", True),
    ("mm2-configs.A.internal", True),
    ("A.checkpoints.internal", True),
    ("orders.internal", False),      # 4.x dropped the ".internal"/"-internal" suffix rule
    ("orders-internal", False),
    ("mm2-orders", False),
    ("heartbeats", False),
])
def test_internal_topics_kafka_4(topic, internal):
    assert DEFAULT.is_internal_topic(topic) is internal


def test_internal_names_use_the_separator():
    policy = ReplicationPolicy("default", "A", separator="_")
    assert policy.offset_syncs_topic("B") == "mm2-offset-syncs_B_internal"
    assert policy.checkpoints_topic() == "A_checkpoints_internal"
    assert policy.is_internal_topic("mm2-offset-syncs_B_internal")
    assert policy.is_internal_topic("A_checkpoints_internal")
    assert not policy.is_internal_topic("A.checkpoints.internal")
    assert DEFAULT.checkpoints_topic() == "A.checkpoints.internal"
    assert DEFAULT.offset_syncs_topic("B") == "mm2-offset-syncs.B.internal"


def test_is_cycle_follows_the_chain_of_sources():
    assert DEFAULT.is_cycle("B.x", "B")
    assert DEFAULT.is_cycle("C.B.x", "B")
    assert not DEFAULT.is_cycle("C.x", "B")
    assert not DEFAULT.is_cycle("x", "B")
    assert not DEFAULT.is_cycle("B.", "B")          # no source: Java split drops the empty tail
    # identity: only heartbeat lookalikes are guarded
    assert not IDENTITY.is_cycle("B.x", "B")
    assert IDENTITY.is_cycle("B.heartbeats", "B")
    assert IDENTITY.is_cycle("C.B.heartbeats", "B")


def hop(include=(".*",), exclude=(), policy=DEFAULT):
    return Hop("A", "B", policy, tuple(include), tuple(exclude), 0)


def test_replicates_applies_filters_guard_and_internal_rules():
    flow = hop(include=["orders.*", "B.*", "__.*"], exclude=["orders-tmp"])
    assert flow.replicates("orders")
    assert flow.replicates("orders.internal")
    assert not flow.replicates("orders-tmp")
    assert not flow.replicates("payments")           # not included
    assert not flow.replicates("B.orders")           # included but would go back to B
    assert not flow.replicates("__consumer_offsets")  # included but internal
    assert not flow.replicates("order")               # fullmatch, not search


def test_heartbeats_bypass_filters_but_not_the_guard():
    flow = hop(include=["orders"], exclude=[".*heartbeats"])
    assert flow.replicates("heartbeats")
    assert flow.replicates("C.heartbeats")
    assert not flow.replicates("B.heartbeats")
    assert not flow.replicates("myheartbeats")


def test_empty_include_list_matches_nothing():
    flow = hop(include=[])
    assert not flow.replicates("orders")
    assert flow.replicates("heartbeats")


def test_bad_policy_values_are_rejected():
    with pytest.raises(ValueError):
        ReplicationPolicy("mirror", "A")
    with pytest.raises(ValueError):
        ReplicationPolicy("default", "A", separator="")
