"""Desired state and the diff, on hand-built snapshots: no Kafka needed."""

from __future__ import annotations

from builders import acl, cluster, compiled, in_sync, snapshot, topic

from mmplan.plan.diff import compute_plan
from mmplan.plan.model import ChangeKind
from mmplan.state.desired import desired_state


def plan_for(snap, flows="  - {source: us-east, target: us-west}\n", defaults="", allow_delete=False):
    c = compiled(flows, defaults)
    return compute_plan(c, list(c.flows), snap, allow_delete=allow_delete)


def kinds(plan) -> list[tuple[str, str, str]]:
    return [(c.kind.value, c.cluster, c.config or (c.acl.operation if c.acl else c.topic)) for c in plan.changes]


EAST = cluster("us-east", topic("heartbeats", cleanup_policy="compact"),
               topic("mm2-offset-syncs.us-west.internal", cleanup_policy="compact"),
               topic("orders", 3, retention_ms="1000"), topic("__consumer_offsets", 50))


def test_fresh_target_gets_everything():
    east = cluster("us-east", topic("orders", 3, retention_ms="1000",
                                    leader_replication_throttled_replicas="*"), topic("__consumer_offsets", 50),
                   acls=(acl("orders", "ALL"), acl("orders", "WRITE"), acl("orders", "READ", permission="DENY"),
                         acl("ord", "READ", pattern_type="PREFIXED")))
    plan = plan_for(snapshot(east, cluster("us-west")))
    assert sorted(kinds(plan)) == sorted([
        ("create_topic", "us-east", "heartbeats"), ("create_topic", "us-east", "mm2-offset-syncs.us-west.internal"),
        ("create_topic", "us-west", "us-east.checkpoints.internal"), ("create_topic", "us-west", "us-east.heartbeats"),
        ("create_topic", "us-west", "mm2-mmplan-status.us-east.internal"),
        ("create_topic", "us-west", "us-east.orders"), ("create_acl", "us-west", "READ")])
    orders = next(c for c in plan.changes if c.topic == "us-east.orders")
    assert orders.after == {"partitions": 3, "replication_factor": 1, "configs": {"retention.ms": "1000"}}
    assert next(c for c in plan.changes if c.acl).acl.topic == "us-east.orders"
    assert plan.exit_code() == 2


def test_in_sync_is_no_changes():
    plan = plan_for(snapshot(EAST, in_sync(EAST)))
    assert plan.changes == [] and plan.problems == [] and plan.exit_code() == 0


def test_config_drift_is_set_back_and_extra_configs_unset():
    west = in_sync(EAST).model_copy(deep=True)
    west.topics["us-east.orders"] = topic("us-east.orders", 3, retention_ms="5", segment_ms="100")
    plan = plan_for(snapshot(EAST, west))
    assert kinds(plan) == [("set_config", "us-west", "retention.ms"), ("unset_config", "us-west", "segment.ms")]
    assert (plan.changes[0].before, plan.changes[0].after) == ("5", "1000")


def test_config_sync_off_leaves_configs_alone():
    west = in_sync(EAST).model_copy(deep=True)
    west.topics["us-east.orders"] = topic("us-east.orders", 3, retention_ms="5")
    assert plan_for(snapshot(EAST, west), defaults=", sync_topic_configs: {enabled: false}").changes == []


def test_flow_excludes_add_to_never_copy():
    east = cluster("us-east", topic("orders", 1, retention_ms="1", cleanup_policy="compact",
                                    follower_replication_throttled_replicas="*"))
    plan = plan_for(snapshot(east, cluster("us-west")), defaults=", sync_topic_configs: {exclude: [cleanup\\..*]}")
    orders = next(c for c in plan.changes if c.topic == "us-east.orders")
    assert orders.after["configs"] == {"retention.ms": "1"}


def test_source_partition_increase():
    west = in_sync(EAST).model_copy(deep=True)
    west.topics["us-east.orders"] = topic("us-east.orders", 2, retention_ms="1000")
    plan = plan_for(snapshot(EAST, west))
    assert kinds(plan) == [("add_partitions", "us-west", "us-east.orders")]
    assert (plan.changes[0].before, plan.changes[0].after) == (2, 3)


def test_hand_made_topic_with_more_partitions_is_a_problem_not_a_change():
    west = in_sync(EAST).model_copy(deep=True)
    west.topics["us-east.orders"] = topic("us-east.orders", 6, retention_ms="1000")
    plan = plan_for(snapshot(EAST, west))
    assert plan.changes == [] and [p.code for p in plan.problems] == ["partition-mismatch"]
    assert plan.exit_code() == 0


def test_replication_factor_drift_is_a_finding():
    west = in_sync(EAST).model_copy(deep=True)
    west.topics["us-east.orders"] = topic("us-east.orders", 3, rf=2, retention_ms="1000")
    plan = plan_for(snapshot(EAST, west))
    assert plan.changes == [] and [p.code for p in plan.problems] == ["replication-factor-drift"]


def test_orphans_are_held_without_allow_delete():
    west = in_sync(EAST, (topic("us-east.gone", 2), topic("eu.other"), topic("local"),
                          topic("__consumer_offsets", 50))).model_copy(deep=True)
    west.acls.append(acl("us-east.gone"))
    plan = plan_for(snapshot(EAST, west))
    assert kinds(plan) == [("delete_acl", "us-west", "READ"), ("delete_topic", "us-west", "us-east.gone")]
    assert all(c.held for c in plan.changes) and plan.exit_code() == 0
    allowed = plan_for(snapshot(EAST, west), allow_delete=True)
    assert not any(c.held for c in allowed.changes) and allowed.exit_code() == 2


def test_remote_topics_of_an_undeclared_flow_are_orphans():
    flows = "  - {source: us-west, target: us-east}\n"
    east = cluster("us-east", topic("us-west.checkpoints.internal", cleanup_policy="compact"),
                   topic("mm2-mmplan-status.us-west.internal", cleanup_policy="compact"),
                   topic("us-west.heartbeats", cleanup_policy="compact"), topic("us-west.x"))
    west = cluster("us-west", topic("heartbeats", cleanup_policy="compact"),
                   topic("mm2-offset-syncs.us-east.internal", cleanup_policy="compact"), topic("x"))
    assert plan_for(snapshot(east, west), flows=flows).changes == []
    east = east.model_copy(update={"topics": {**east.topics, "us-west.y": topic("us-west.y")}})
    [orphan] = plan_for(snapshot(east, west), flows=flows).changes
    assert orphan.topic == "us-west.y" and "source topic gone" in orphan.reason
    # a topic on us-west that looks remote from us-east, with no flow us-east->us-west declared
    west = west.model_copy(update={"topics": {**west.topics, "us-east.z": topic("us-east.z")}})
    both = plan_for(snapshot(east, west), flows=flows + "  - {source: us-east, target: us-west, enabled: false}\n")
    assert [c.topic for c in both.changes] == ["us-west.y"]


def test_identity_flow_never_makes_orphans():
    flows = "  - {source: us-east, target: us-west, replication_policy: identity}\n"
    east = cluster("us-east", topic("heartbeats", cleanup_policy="compact"),
                   topic("mm2-offset-syncs.us-west.internal", cleanup_policy="compact"), topic("orders"))
    west = cluster("us-west", topic("us-east.checkpoints.internal", cleanup_policy="compact"),
                   topic("mm2-mmplan-status.us-east.internal", cleanup_policy="compact"),
                   topic("us-east.heartbeats", cleanup_policy="compact"), topic("orders"), topic("local-only"))
    assert plan_for(snapshot(east, west), flows=flows).changes == []


def test_unreachable_cluster_is_an_error():
    plan = plan_for(snapshot(EAST, unreachable={"us-west": "cannot connect to w:9092"}))
    assert [p.code for p in plan.problems] == ["unreachable"] and plan.exit_code() == 1
    assert plan.changes == []


def test_live_replication_factor_above_brokers():
    plan = plan_for(snapshot(EAST, in_sync(EAST)),
                    flows="  - {source: us-east, target: us-west, replication_factor: 3}\n")
    assert {p.code for p in plan.problems} == {"replication-factor", "replication-factor-drift"}
    assert plan.exit_code() == 1


def test_min_insync_replicas_above_replication_factor():
    east = cluster("us-east", topic("orders", 1, min_insync_replicas="2"))
    plan = plan_for(snapshot(east, cluster("us-west")))
    assert "min-insync-replicas" in [p.code for p in plan.problems] and plan.exit_code() == 1


def test_disabled_flow_wants_nothing():
    c = compiled("  - {source: us-east, target: us-west, enabled: false}\n")
    assert desired_state(list(c.flows), snapshot(EAST, cluster("us-west"))).topics == {}


def test_heartbeats_replicate_whatever_the_filters_say():
    c = compiled("  - {source: us-east, target: us-west, topics: {include: [orders]}}\n")
    desired = desired_state(list(c.flows), snapshot(EAST, cluster("us-west")))
    assert {n for (cl, n) in desired.topics if cl == "us-west"} == {
        "us-east.heartbeats", "us-east.orders", "us-east.checkpoints.internal", "mm2-mmplan-status.us-east.internal"}


def test_exactly_once_flows_get_a_positions_topic_on_the_target():
    c = compiled("  - {source: us-east, target: us-west, exactly_once: true}\n")
    desired = desired_state(list(c.flows), snapshot(EAST, cluster("us-west")))
    positions = desired.topics[("us-west", "mm2-mmplan-offsets.us-east.internal")]
    assert (positions.role, positions.partitions, positions.configs) == ("positions", 1, {"cleanup.policy": "compact"})
    c = compiled("  - {source: us-east, target: us-west}\n")
    assert ("us-west", "mm2-mmplan-offsets.us-east.internal") not in desired_state(
        list(c.flows), snapshot(EAST, cluster("us-west"))).topics


def test_flow_selection_limits_the_plan():
    flows = "  - {source: us-east, target: us-west}\n  - {source: us-west, target: us-east}\n"
    c = compiled(flows)
    plan = compute_plan(c, c.select(("us-west:us-east",)), snapshot(EAST, cluster("us-west")))
    assert plan.flows == ["us-west->us-east"]
    assert {ch.flow for ch in plan.changes} == {"us-west->us-east"}


def test_acl_sync_rules():
    east = cluster("us-east", topic("orders"), acls=(acl("orders", "ALL"), acl("orders", "DESCRIBE"),
                                                      acl("orders", "WRITE"), acl("internal-only")))
    plan = plan_for(snapshot(east, cluster("us-west")), defaults=", topics: {include: [orders]}")
    assert sorted(c.acl.operation for c in plan.changes if c.kind is ChangeKind.create_acl) == ["DESCRIBE", "READ"]
