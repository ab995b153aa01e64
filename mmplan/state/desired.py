"""What each cluster must hold for the topology's flows, given the live source clusters. Pure.

MirrorMaker 2 semantics: every source topic a flow replicates gets a remote topic on the target
with the source's partition count, the flow's replication factor and (when config sync is on) the
configs set on the source topic itself; literal topic ACLs are carried over (ALLOW only, ALL
becomes READ, never WRITE); each flow has its heartbeats and offset-syncs topics on the source
and its checkpoints topic on the target, single-partition and compacted. mmplan adds two of its own on
the target: the status topic its daemons report the flow's state in, and for exactly-once flows the
positions topic written inside the flow's transactions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmplan.graph.checks import LEGAL_NAME, MAX_TOPIC_NAME
from mmplan.graph.compile import CompiledFlow
from mmplan.state.snapshot import AclBinding, ClusterState, Snapshot, TopicState

# Never copied whatever the flow says: replica placement and throttles are properties of the
# source cluster's brokers, tiered storage depends on the target brokers' setup.
NEVER_COPY = (
    r"(leader|follower)\.replication\.throttled\.replicas",
    r"confluent\..*",
    r"remote\.storage\.enable",
    r"local\.retention\.(ms|bytes)",
)
COMPACTED = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class DesiredTopic:
    cluster: str
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    exact: bool  # True: configs the topic has beyond `configs` are unset (synced remote topics)
    flow: str
    role: str  # remote | heartbeats | checkpoints | offset-syncs | status | positions
    source_topic: str | None = None


@dataclass(frozen=True)
class Problem:
    """Something the live state makes wrong that no change will fix."""

    code: str
    severity: str
    message: str
    flow: str | None = None
    cluster: str | None = None


@dataclass
class DesiredState:
    topics: dict[tuple[str, str], DesiredTopic] = field(default_factory=dict)
    acls: dict[str, dict[AclBinding, str]] = field(default_factory=dict)  # cluster -> binding -> flow
    problems: list[Problem] = field(default_factory=list)


def desired_state(flows: list[CompiledFlow], snapshot: Snapshot) -> DesiredState:
    """The topics and ACLs the enabled `flows` need, computed from the live sources in `snapshot`."""
    state = DesiredState()
    for flow in flows:
        if not flow.settings.enabled:
            continue
        missing = [a for a in (flow.source, flow.target) if a not in snapshot.clusters]
        if missing:
            continue  # the plan reports unreachable clusters
        source = snapshot.clusters[flow.source]
        for topic in _internal_topics(flow):
            _add(state, topic)
        for topic in _replicated(flow, _source_topics(flow, source)):
            _add(state, topic)
        if flow.settings.sync_topic_acls.enabled and source.acls_readable:
            for binding in remote_acls(flow, source):
                state.acls.setdefault(flow.target, {}).setdefault(binding, flow.name)
    return state


def _internal_topics(flow: CompiledFlow) -> list[DesiredTopic]:
    s = flow.settings
    rf = s.replication_factor

    def internal(cluster: str, name: str, role: str) -> DesiredTopic:
        return DesiredTopic(cluster=cluster, name=name, partitions=1, replication_factor=rf, configs=COMPACTED,
                            exact=False, flow=flow.name, role=role)

    topics = [internal(flow.source, flow.policy.offset_syncs_topic(flow.target), "offset-syncs")]
    if s.heartbeats.enabled:
        topics.append(internal(flow.source, s.heartbeats.topic, "heartbeats"))
    if s.checkpoints.enabled:
        topics.append(internal(flow.target, flow.policy.checkpoints_topic(), "checkpoints"))
    topics.append(internal(flow.target, flow.policy.status_topic(), "status"))
    if s.exactly_once:
        topics.append(internal(flow.target, flow.policy.positions_topic(), "positions"))
    return topics


def _source_topics(flow: CompiledFlow, source: ClusterState) -> list[TopicState]:
    """The live source topics, plus the heartbeats topic this flow is about to create there."""
    topics = list(source.topics.values())
    heartbeats = flow.settings.heartbeats
    if heartbeats.enabled and heartbeats.topic not in source.topics:
        topics.append(TopicState(name=heartbeats.topic, partitions=1, replication_factor=1, configs=COMPACTED))
    return topics


def _replicated(flow: CompiledFlow, topics: list[TopicState]) -> list[DesiredTopic]:
    s = flow.settings
    sync = s.sync_topic_configs
    excluded = [re.compile(p) for p in NEVER_COPY + tuple(sync.exclude)]
    out = []
    for topic in sorted(topics, key=lambda t: t.name):
        if not flow.hop.replicates(topic.name):
            continue
        configs = ({k: v for k, v in topic.configs.items() if not any(p.fullmatch(k) for p in excluded)}
                   if sync.enabled else {})
        out.append(DesiredTopic(cluster=flow.target, name=flow.policy.remote_topic(topic.name),
                                partitions=topic.partitions, replication_factor=s.replication_factor,
                                configs=configs, exact=sync.enabled, flow=flow.name, role="remote",
                                source_topic=topic.name))
    return out


def remote_acls(flow: CompiledFlow, source: ClusterState) -> list[AclBinding]:
    """MirrorMaker 2's ACL sync: literal ALLOW topic ACLs of replicated topics, on the remote name;
    ALL becomes READ and WRITE is never granted on a remote topic."""
    out = []
    for acl in source.acls:
        if (acl.pattern_type != "LITERAL" or acl.permission != "ALLOW" or acl.operation == "WRITE"
                or not flow.hop.replicates(acl.topic)):
            continue
        operation = "READ" if acl.operation == "ALL" else acl.operation
        out.append(acl.model_copy(update={"topic": flow.policy.remote_topic(acl.topic), "operation": operation}))
    return out


def _add(state: DesiredState, topic: DesiredTopic) -> None:
    key = (topic.cluster, topic.name)
    if not LEGAL_NAME.fullmatch(topic.name) or len(topic.name) > MAX_TOPIC_NAME:
        state.problems.append(Problem("bad-name", "error", f"{topic.name!r} cannot be a Kafka topic name "
                                      f"(legal characters, at most {MAX_TOPIC_NAME})", topic.flow, topic.cluster))
        return
    mis = topic.configs.get("min.insync.replicas")
    if mis is not None and mis.isdigit() and int(mis) > topic.replication_factor:
        state.problems.append(Problem(
            "min-insync-replicas", "error",
            f"{topic.name}: min.insync.replicas={mis} synced from {topic.source_topic} exceeds the flow's "
            f"replication factor {topic.replication_factor}, so every acks=all write would be refused; raise "
            "replication_factor or exclude min.insync.replicas in sync_topic_configs", topic.flow, topic.cluster))
        return
    existing = state.topics.get(key)
    if existing is None:
        state.topics[key] = topic
    elif existing.role == topic.role == "heartbeats" or existing.role == topic.role == "offset-syncs":
        return  # shared by several flows out of one source
    elif existing != topic:
        state.problems.append(Problem(
            "topic-collision", "error",
            f"{topic.name} on {topic.cluster} would be written by both {existing.flow} and {topic.flow}",
            topic.flow, topic.cluster))
