"""The live state of clusters as plain data: read once by `state.live`, compared by the pure stages."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TopicState(_Frozen):
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = Field(default_factory=dict, description="only configs set on the topic itself")


class AclBinding(_Frozen):
    """A topic ACL. Operation and permission are Kafka's names: READ, WRITE, ALL, ...; ALLOW, DENY."""

    topic: str
    pattern_type: str = "LITERAL"
    principal: str
    host: str = "*"
    operation: str
    permission: str = "ALLOW"

    def describe(self) -> str:
        return f"{self.permission} {self.principal} {self.operation} on {self.topic} from {self.host}"


class ClusterState(_Frozen):
    alias: str
    cluster_id: str
    brokers: int
    topics: dict[str, TopicState] = Field(default_factory=dict)
    acls: list[AclBinding] = Field(default_factory=list, description="topic ACLs; empty when not readable")
    acls_readable: bool = True


class Snapshot(_Frozen):
    """What was read from each cluster, and why the unreadable ones could not be read."""

    clusters: dict[str, ClusterState] = Field(default_factory=dict)
    unreachable: dict[str, str] = Field(default_factory=dict, description="alias -> why it could not be read")

    def fingerprints(self) -> dict[str, str]:
        """A hash per cluster of everything read from it: equal hashes mean the same live state."""
        out = {}
        for alias, cluster in self.clusters.items():
            doc = cluster.model_dump(mode="json")
            doc["acls"] = sorted(doc["acls"], key=lambda a: json.dumps(a, sort_keys=True))
            out[alias] = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        return out
