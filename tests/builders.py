"""Small builders for the pure plan tests: a topology and a live snapshot written in a few lines."""

from __future__ import annotations

from mmplan.graph.compile import CompiledTopology, compile_topology
from mmplan.state.snapshot import AclBinding, ClusterState, Snapshot, TopicState
from mmplan.topology.loader import parse_topology

PAIR = """\
version: 1
defaults: {{replication_factor: 1{defaults}}}
clusters:
  us-east: {{bootstrap_servers: e:9092, brokers: 1}}
  us-west: {{bootstrap_servers: w:9092, brokers: 1}}
flows:
{flows}"""


def compiled(flows: str = "  - {source: us-east, target: us-west}\n", defaults: str = "") -> CompiledTopology:
    return compile_topology(parse_topology(PAIR.format(flows=flows, defaults=defaults)).topology)


def topic(name: str, partitions: int = 1, rf: int = 1, **configs: str) -> TopicState:
    return TopicState(name=name, partitions=partitions, replication_factor=rf,
                      configs={k.replace("_", "."): v for k, v in configs.items()})


def acl(topic_name: str, operation: str = "READ", principal: str = "User:app", permission: str = "ALLOW",
        pattern_type: str = "LITERAL") -> AclBinding:
    return AclBinding(topic=topic_name, operation=operation, principal=principal, permission=permission,
                      pattern_type=pattern_type)


def cluster(alias: str, *topics: TopicState, acls: tuple[AclBinding, ...] = (), brokers: int = 1) -> ClusterState:
    return ClusterState(alias=alias, cluster_id=f"id-{alias}", brokers=brokers, topics={t.name: t for t in topics},
                        acls=list(acls))


def snapshot(*clusters: ClusterState, unreachable: dict[str, str] | None = None) -> Snapshot:
    return Snapshot(clusters={c.alias: c for c in clusters}, unreachable=unreachable or {})


def in_sync(east: ClusterState, west_extra: tuple[TopicState, ...] = ()) -> ClusterState:
    """A us-west that already holds everything the default flow wants from `east`."""
    topics = [topic(f"us-east.{t.name}", t.partitions, **{k.replace(".", "_"): v for k, v in t.configs.items()})
              for t in east.topics.values() if not t.name.startswith(("__", "mm2-", "heartbeats"))]
    return cluster("us-west", topic("us-east.checkpoints.internal", cleanup_policy="compact"),
                   topic("mm2-mmplan-status.us-east.internal", cleanup_policy="compact"),
                   topic("us-east.heartbeats", cleanup_policy="compact"), *topics, *west_extra)
