"""Ask a sandbox cluster for its metadata: is it up, and how many brokers are registered."""

from __future__ import annotations

import socket

from mmplan.sandbox.state import HOST, Cluster, Sandbox


def _port_open(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


def registered_brokers(sb: Sandbox, cluster: Cluster, timeout_ms: int = 5000) -> int | None:
    """The number of unfenced brokers in the cluster's metadata, or None when it does not answer."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    if not any(_port_open(n.port) for n in cluster.nodes):
        return None
    admin = None
    try:
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, client_id="mmplan-sandbox",
                                 request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms,
                                 **sb.client_config())
        return sum(1 for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced"))
    except (KafkaError, OSError):  # the cluster does not answer (yet)
        return None
    finally:
        if admin is not None:
            admin.close()


def _partition_for(group: str, partitions: int) -> int:
    """The __consumer_offsets partition of `group`, as Kafka computes it (Java String.hashCode)."""
    h = 0
    for ch in group:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= (1 << 31) else h
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def probe_groups(partitions: int) -> list[str]:
    """Group names that together land on every partition of __consumer_offsets."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        name = f"mmplan-sandbox-ready-{i}"
        found.setdefault(_partition_for(name, partitions), name)
        i += 1
    return [found[p] for p in range(partitions)]


def group_coordinators_ready(sb: Sandbox, cluster: Cluster, groups: list[str], timeout_ms: int = 5000) -> bool:
    """True when every group coordinator answers an offset fetch.

    The first group request creates __consumer_offsets; until its partitions are loaded, group
    requests fail with NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE. Clusters are handed out only
    after this, so the first consumer group of a test does not hit that window.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = None
    try:
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, client_id="mmplan-sandbox",
                                 request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms,
                                 **sb.client_config())
        admin.list_group_offsets({g: None for g in groups})
        return True
    except (KafkaError, OSError):
        return False
    finally:
        if admin is not None:
            admin.close()
