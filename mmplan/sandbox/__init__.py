"""Real Apache Kafka on one machine: jars from Maven, KRaft clusters on loopback ports.

Public API:
- `up(directory, aliases, brokers, security, base_port=, timeout=, progress=, overrides=)` -> `UpResult`
  (`.sandbox` is a `Sandbox`; `.started` is False when it was already running)
- `status(directory)` -> `(Sandbox, [ClusterStatus])`, `down(directory, keep=False)`, `load(directory)`
- `Sandbox.kafka_config(alias)` -> kafka-python keyword arguments (bootstrap servers and security),
  `Sandbox.cluster(alias)` -> `Cluster` (`.bootstrap_servers`, `.nodes`, `.cluster_id`)
- `KAFKA_VERSION` (pinned in `maven.py`), `maven.resolve()`, `maven.classpath()` (for MirrorMaker 2 and tools)
"""

from mmplan.sandbox import cluster, outputs
from mmplan.sandbox.cluster import (
    DEFAULT_CLUSTERS,
    DEFAULT_DIR,
    ClusterStatus,
    NodeStatus,
    UpResult,
    down,
    load,
    status,
    up,
)
from mmplan.sandbox.maven import KAFKA_VERSION
from mmplan.sandbox.state import PASSWORD_VAR, SANDBOX_USER, Cluster, Node, Sandbox

__all__ = [
    "cluster", "outputs", "DEFAULT_CLUSTERS", "DEFAULT_DIR", "KAFKA_VERSION", "PASSWORD_VAR", "SANDBOX_USER",
    "Cluster", "ClusterStatus", "Node", "NodeStatus", "Sandbox", "UpResult",
    "down", "load", "status", "up",
]
