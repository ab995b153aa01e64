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
