"""`mmplan doctor`: can each cluster be reached and used, one check per line.

Permissions are probed without changing anything: validate-only requests, reads, and the cluster's
authorized operations as DescribeCluster reports them for the principal mmplan connects as.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import kafka.errors as Errors
from kafka.admin import (
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    ResourcePatternFilter,
    ResourceType,
)

from mmplan.errors import MmplanError
from mmplan.kafka.admin import Admin
from mmplan.kafka.errors import describe, response_error, result_error
from mmplan.topology.models import Cluster, Topology

PROBE_TOPIC = "mmplan-doctor-probe"  # only ever named in validate-only requests: never created
PROBE_GROUP = "mmplan-doctor-probe"
MIN_VERSION = (2, 4)  # incremental alter configs (2.3) and broker-default replication factor (2.4)
SKIPPED = "skipped: not reachable"
_DENIED = (Errors.TopicAuthorizationFailedError.errno, Errors.ClusterAuthorizationFailedError.errno)
CHECKS = ("reachable", "credentials", "kafka version", "brokers", "cluster id", "describe topics",
          "create topics", "alter configs", "describe ACLs", "create ACLs", "read groups")


@dataclass(frozen=True)
class Check:
    cluster: str
    name: str
    ok: bool
    detail: str


def run_doctor(topology: Topology, timeout: float = 10.0) -> list[Check]:
    """Every check for every cluster (clusters checked concurrently), in topology order."""
    aliases = list(topology.clusters)
    if not aliases:
        return []
    with ThreadPoolExecutor(max_workers=len(aliases), thread_name_prefix="mmplan-doctor") as pool:
        results = pool.map(lambda a: _check_cluster(a, topology, timeout), aliases)
        return [check for checks in results for check in checks]


def _check_cluster(alias: str, topology: Topology, timeout: float) -> list[Check]:
    cluster = topology.clusters[alias]
    checks: list[Check] = []

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(alias, name, ok, detail))

    def skip_rest(detail: str) -> list[Check]:
        for name in CHECKS[len(checks):]:
            add(name, False, detail)
        return checks

    ok, detail = _reachable(cluster.bootstrap_servers, timeout)
    add("reachable", ok, detail)
    if not ok:
        return skip_rest(SKIPPED)
    try:
        admin = Admin.connect(alias, cluster, timeout)
    except MmplanError as e:
        add("credentials", False, e.message + (f" ({e.hint})" if e.hint else ""))
        return skip_rest("skipped: not connected")
    with admin:
        add("credentials", True, _identity(cluster))
        try:
            _check_connected(admin, alias, topology, add)
        except MmplanError as e:
            name = CHECKS[len(checks)]
            add(name, False, e.message)
            return skip_rest("skipped: an earlier request failed")
    return checks


def _check_connected(admin: Admin, alias: str, topology: Topology, add: Callable[[str, bool, str], None]) -> None:
    cluster = topology.clusters[alias]
    version = admin.broker_version()
    shown = ".".join(map(str, version)) if version else "unknown"
    add("kafka version", bool(version) and version >= MIN_VERSION,
        f"{shown} (from ApiVersions)" if version and version >= MIN_VERSION
        else f"{shown}: mmplan needs Kafka {'.'.join(map(str, MIN_VERSION))} or newer")

    info = admin.describe_cluster()
    brokers = sum(1 for b in info["brokers"] if not b.get("is_fenced"))
    if cluster.brokers is None:
        add("brokers", True, f"{brokers} (none declared)")
    else:
        add("brokers", brokers == cluster.brokers, f"{brokers} live, {cluster.brokers} declared")
    found = info["cluster_id"]
    if cluster.cluster_id is None:
        add("cluster id", True, f"{found} (none declared)")
    else:
        add("cluster id", found == cluster.cluster_id,
            found if found == cluster.cluster_id else f"{found}, but the topology declares {cluster.cluster_id}")

    add("describe topics", *_describe_topics(admin))
    add("create topics", *_create_topics(admin))
    add("alter configs", *_alter_configs(admin))
    acls_ok, acls_detail, authorizer = _describe_acls(admin)
    add("describe ACLs", acls_ok, acls_detail)
    if not authorizer:
        add("create ACLs", True, "no authorizer: nothing to create")
    else:
        allowed = "ALTER" in (info.get("authorized_operations") or [])
        add("create ACLs", allowed, "Alter on the cluster" if allowed else "not authorized: needs Alter on the cluster")
    add("read groups", *_read_groups(admin, _groups_of(alias, topology)))


def _reachable(servers: list[str], timeout: float) -> tuple[bool, str]:
    """Whether any bootstrap server accepts a TCP connection within the timeout."""
    deadline = time.monotonic() + timeout
    failures = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)),
                                          timeout=max(0.1, (deadline - time.monotonic()) / len(servers))):
                return True, f"{server} accepts connections"
        except OSError as e:
            failures.append(f"{server}: {e.strerror or e}")
    return False, "no bootstrap server accepts connections (" + "; ".join(failures) + ")"


def _identity(cluster: Cluster) -> str:
    sec = cluster.security
    if sec is None or sec.protocol == "PLAINTEXT":
        return "PLAINTEXT (no authentication)"
    if sec.protocol.startswith("SASL_"):
        return f"{sec.protocol}, {sec.sasl_mechanism or 'PLAIN'} as {sec.sasl_username}"
    return f"{sec.protocol}" + (", client certificate" if sec.ssl_certfile else "")


def _describe_topics(admin: Admin) -> tuple[bool, str]:
    try:
        state = admin.read_state(acls=False)
    except MmplanError as e:
        return False, e.message
    visible = [t for t in state.topics if not t.startswith("__")]
    return True, f"{len(visible)} topics visible, their configs readable"


def _create_topics(admin: Admin) -> tuple[bool, str]:
    spec = {PROBE_TOPIC: {"num_partitions": 1, "replication_factor": -1}}
    try:
        result = admin.kafka.create_topics(spec, validate_only=True, raise_errors=False)
    except Errors.KafkaError as e:
        return False, describe(e)
    topic = result["topics"][0]
    if topic["error_code"] in (0, Errors.TopicAlreadyExistsError.errno):
        return True, "allowed (validate-only request)"
    if topic["error_code"] in _DENIED:
        return False, "not authorized: needs Create on the cluster or on the topics"
    return False, response_error(topic["error_code"], topic["error_message"]) or ""


def _alter_configs(admin: Admin) -> tuple[bool, str]:
    resource = ConfigResource(ConfigResourceType.TOPIC, PROBE_TOPIC, {"retention.ms": "604800000"})
    try:
        result = admin.kafka.alter_configs([resource], validate_only=True, raise_on_unknown=False, incremental=True)
    except Errors.KafkaError as e:
        return False, describe(e)
    answer = result.get("topic", {}).get(PROBE_TOPIC, "no answer")
    # Authorization comes before the existence check: an unknown topic means the principal may alter configs.
    if answer == "OK" or "UnknownTopicOrPartitionError" in answer:
        return True, "allowed (validate-only request)"
    if "AuthorizationFailed" in answer:
        return False, "not authorized: needs AlterConfigs on the topics"
    return False, result_error(answer)


def _describe_acls(admin: Admin) -> tuple[bool, str, bool]:
    """(ok, detail, whether the cluster has an authorizer)."""
    everything = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                           permission_type=ACLPermissionType.ANY,
                           resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, None, ACLResourcePatternType.ANY))
    try:
        found, _ = admin.kafka.describe_acls(everything)
    except Errors.SecurityDisabledError:
        return True, "no authorizer: the cluster enforces no ACLs", False
    except Errors.AuthorizationError:
        return False, "not authorized: needs Describe on the cluster", True
    except Errors.KafkaError as e:
        return False, describe(e), True
    return True, f"{len(found)} topic ACLs readable", True


def _groups_of(alias: str, topology: Topology) -> list[str]:
    """The consumer groups mmplan uses on this cluster: `<source>-><target>` of each flow from it."""
    return [f"{f.source}->{f.target}" for f in topology.flows if f.source == alias] or [PROBE_GROUP]


def _read_groups(admin: Admin, groups: list[str]) -> tuple[bool, str]:
    try:
        admin.kafka.list_group_offsets({g: None for g in groups})
    except (Errors.CoordinatorNotAvailableError, Errors.CoordinatorLoadInProgressError):
        pass  # authorized: the offsets topic is just not there yet
    except Errors.AuthorizationError:
        return False, f"not authorized: needs Describe and Read on group {', '.join(groups)}"
    except Errors.KafkaError as e:
        return False, f"{', '.join(groups)}: {describe(e)}"
    return True, ", ".join(groups)
