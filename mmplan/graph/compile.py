"""Compiling a topology into a graph: clusters are nodes, enabled flows are edges.

Nothing outside `graph/` handles networkx directly; callers ask CompiledTopology.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import networkx as nx

from mmplan.errors import MmplanError
from mmplan.graph.policy import Hop, ReplicationPolicy
from mmplan.topology.models import FlowSettings, Topology, resolve_flow


@dataclass(frozen=True)
class CompiledFlow:
    """A flow with its settings resolved (built-ins < defaults < the flow)."""

    index: int
    source: str
    target: str
    settings: FlowSettings

    @property
    def name(self) -> str:
        return flow_name(self.source, self.target)

    @property
    def loc(self) -> tuple:
        return ("flows", self.index)

    @cached_property
    def policy(self) -> ReplicationPolicy:
        s = self.settings
        return ReplicationPolicy(kind=s.replication_policy.value, source_alias=self.source,
                                 separator=s.separator, heartbeats_topic=s.heartbeats.topic)

    @cached_property
    def hop(self) -> Hop:
        s = self.settings
        return Hop(source=self.source, target=self.target, policy=self.policy,
                   include=tuple(s.topics.include), exclude=tuple(s.topics.exclude), flow_index=self.index)


def flow_name(source: str, target: str) -> str:
    return f"{source}->{target}"


@dataclass(frozen=True)
class CompiledTopology:
    topology: Topology
    flows: tuple[CompiledFlow, ...]
    graph: nx.MultiDiGraph

    @property
    def enabled_flows(self) -> list[CompiledFlow]:
        """Enabled flows between declared clusters, in file order."""
        return [self.flows[i] for i in sorted(key for _, _, key in self.graph.edges(keys=True))]

    def select(self, names: list[str] | tuple[str, ...]) -> list[CompiledFlow]:
        """The flows named `a->b` or `a:b`; all flows when `names` is empty."""
        if not names:
            return list(self.flows)
        by_name = {f.name: f for f in self.flows}
        chosen = []
        for name in names:
            key = name.replace(":", "->", 1) if "->" not in name else name
            if key not in by_name:
                known = ", ".join(by_name) or "none"
                raise MmplanError(f"no flow named {name!r}", hint=f"flows in this topology: {known}")
            chosen.append(by_name[key])
        return chosen


def compile_topology(topology: Topology) -> CompiledTopology:
    """Resolve every flow's settings and build the cluster graph."""
    flows = tuple(
        CompiledFlow(index=i, source=f.source, target=f.target, settings=resolve_flow(topology.defaults, f))
        for i, f in enumerate(topology.flows)
    )
    graph = nx.MultiDiGraph()
    for alias, cluster in topology.clusters.items():
        graph.add_node(alias, brokers=cluster.brokers)
    for flow in flows:
        if flow.settings.enabled and flow.source in topology.clusters and flow.target in topology.clusters:
            graph.add_edge(flow.source, flow.target, key=flow.index)
    return CompiledTopology(topology=topology, flows=flows, graph=graph)
