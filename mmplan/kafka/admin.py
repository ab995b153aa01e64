"""One admin connection per cluster: batched reads of the live state and per-resource writes.

Thin over kafka-python's KafkaAdminClient. Reads raise MmplanError when a request fails as a whole;
writes report an error message (or None) for every resource, so apply can show each outcome.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kafka.errors as Errors
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    AlterConfigOp,
    ConfigResource,
    ConfigResourceType,
    OffsetSpec,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.net.compat import KafkaNetClient
from kafka.protocol.admin import CreateAclsRequest, DescribeConfigsRequest
from kafka.protocol.consumer.offsets import IsolationLevel
from kafka.structs import OffsetAndMetadata

from mmplan.errors import MmplanError
from mmplan.kafka.config import client_config
from mmplan.kafka.errors import FailureLog, connect_failure, describe, request_failure, response_error, result_error
from mmplan.state.snapshot import AclBinding, ClusterState, TopicState
from mmplan.topology.models import Cluster

DESCRIBE_CONFIGS_BATCH = 1000  # topics per DescribeConfigs request: ~5 MB of configs per response
_TOPIC_CONFIG = 1  # DescribeConfigs config_source DYNAMIC_TOPIC_CONFIG: set on the topic itself
_ACLS_UNREADABLE = (Errors.SecurityDisabledError, Errors.AuthorizationError)


class Admin:
    """An admin client for one cluster; use as a context manager or call close()."""

    def __init__(self, alias: str, client: KafkaAdminClient, timeout: float):
        self.alias = alias
        self.requests = 0
        self.timeout = timeout
        self.kafka = client  # the KafkaAdminClient, for the calls this class does not wrap
        manager = client._manager  # count every request kafka-python sends for us
        send = manager.send

        def counted(*args, **kwargs):
            self.requests += 1
            return send(*args, **kwargs)

        manager.send = counted

    @classmethod
    def connect(cls, alias: str, cluster: Cluster, timeout: float = 10.0) -> Admin:
        """Connect within about `timeout` seconds, or raise MmplanError saying what failed."""
        config = client_config(alias, cluster, timeout)
        _check_tls_files(alias, config)
        # A client id of its own names this client's IO thread, so its logged failures can be told apart.
        config["client_id"] = f"{config['client_id']}-{alias}-{uuid.uuid4().hex[:6]}"
        made: list[KafkaNetClient] = []

        def network(**kwargs) -> KafkaNetClient:
            made.append(KafkaNetClient(**kwargs))
            return made[-1]

        with FailureLog(config["client_id"]) as failures:
            try:
                client = KafkaAdminClient(**config, kafka_client=network)
            except Errors.KafkaError as e:
                for net in made:  # a failed KafkaAdminClient leaves its IO thread running
                    net.close()
                    net._net.stop()
                raise connect_failure(alias, config, failures, e, timeout) from None
        return cls(alias, client, timeout)

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.kafka.close()

    # -- reads ---------------------------------------------------------------------------------------------

    def cluster_info(self) -> tuple[str, int]:
        """(cluster id, number of live brokers)."""
        info = self.describe_cluster()
        return info["cluster_id"], sum(1 for b in info["brokers"] if not b.get("is_fenced"))

    def describe_cluster(self) -> dict:
        """kafka-python's DescribeCluster answer: cluster_id, brokers, authorized_operations of this principal."""
        return self._call("describe the cluster", self.kafka.describe_cluster)

    def broker_version(self) -> tuple[int, ...] | None:
        """The broker version kafka-python inferred from ApiVersions, e.g. (4, 1)."""
        return self.kafka._manager.broker_version

    def read_state(self, acls: bool = True) -> ClusterState:
        """All topics with partitions, replication factor, configs set on the topic, and topic ACLs."""
        cluster_id, brokers, topics = self._read_metadata()
        configs = self._read_configs(sorted(topics))
        states = {name: TopicState(name=name, partitions=p, replication_factor=rf, configs=configs[name])
                  for name, (p, rf) in topics.items() if name in configs}
        bindings, readable = self._read_acls() if acls else ([], False)
        return ClusterState(alias=self.alias, cluster_id=cluster_id, brokers=brokers, topics=states,
                            acls=bindings, acls_readable=readable)

    def _read_metadata(self) -> tuple[str, int, dict[str, tuple[int, int]]]:
        """Cluster id, broker count and name -> (partitions, replication factor), from one Metadata request."""
        client = self.kafka
        metadata = self._call("list topics", client._manager.run, client._get_cluster_metadata, None)
        out = {}
        for topic in metadata["topics"]:
            if topic["error_code"] == Errors.UnknownTopicOrPartitionError.errno:
                continue  # being deleted
            if topic["error_code"] and not topic["partitions"]:
                raise MmplanError(f"cannot describe topic {topic['name']}: "
                                  f"{response_error(topic['error_code'], None)}", where=f"cluster {self.alias}")
            parts = topic["partitions"]
            out[topic["name"]] = (len(parts), max((len(p["replica_nodes"]) for p in parts), default=0))
        return metadata["cluster_id"], len(metadata["brokers"]), out

    def _read_configs(self, names: list[str]) -> dict[str, dict[str, str]]:
        """name -> configs set on the topic itself; a topic deleted meanwhile is left out."""
        out: dict[str, dict[str, str]] = {}
        for start in range(0, len(names), DESCRIBE_CONFIGS_BATCH):
            batch = names[start:start + DESCRIBE_CONFIGS_BATCH]
            request = DescribeConfigsRequest(resources=[(ConfigResourceType.TOPIC, n, None) for n in batch],
                                             include_synonyms=False)
            response = self._call("describe topic configs", self._send, request)
            for result in response.results:
                if result.error_code == Errors.UnknownTopicOrPartitionError.errno:
                    continue
                if result.error_code:
                    raise MmplanError(f"cannot read the configs of topic {result.resource_name}: "
                                      f"{response_error(result.error_code, result.error_message)}",
                                      where=f"cluster {self.alias}",
                                      hint="grant DescribeConfigs on the topics (`mmplan doctor` lists permissions)")
                out[result.resource_name] = {c.name: c.value for c in result.configs
                                             if c.config_source == _TOPIC_CONFIG and c.value is not None}
        return out

    def _read_acls(self) -> tuple[list[AclBinding], bool]:
        """Every topic ACL, from one DescribeAcls request; ([], False) when ACLs cannot be read."""
        everything = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                               permission_type=ACLPermissionType.ANY,
                               resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, None,
                                                                      ACLResourcePatternType.ANY))
        try:
            found, _ = self._call("describe ACLs", self.kafka.describe_acls, everything, passthrough=_ACLS_UNREADABLE)
        except _ACLS_UNREADABLE:
            return [], False
        return [_binding(acl) for acl in found], True

    # -- consumer groups and offsets --------------------------------------------------------------------------

    def groups(self) -> list[str]:
        """The ids of every consumer group the cluster knows."""
        listed = self._call("list consumer groups", self.kafka.list_groups)
        return sorted(g["group_id"] for g in listed)

    def group_offsets(self, group: str) -> dict[TopicPartition, int]:
        """The committed offsets of `group` ({} for a group that committed nothing)."""
        found = self._call(f"read the offsets of group {group}", self.kafka.list_group_offsets, {group: None})
        return {tp: om.offset for tp, om in found.get(group, {}).items() if om.offset >= 0}

    def group_members(self, group: str) -> tuple[str, int]:
        """(state, number of active members) of `group`; ("Dead", 0) for a group that does not exist."""
        described = self._call(f"describe group {group}", self.kafka.describe_groups, [group])
        info = described.get(group) or {}
        return info.get("group_state") or "Dead", len(info.get("members") or [])

    def commit_group_offsets(self, group: str, offsets: dict[TopicPartition, int], metadata: str = "") -> dict:
        """Commit `offsets` for `group`, which must have no active members; TopicPartition -> error or None."""
        specs = {tp: OffsetAndMetadata(offset, metadata, -1) for tp, offset in offsets.items()}
        result, failed = self._write(list(offsets), f"commit the offsets of group {group}",
                                     self.kafka.alter_group_offsets, group, specs)
        if failed is not None:
            return failed
        return {tp: None if error is Errors.NoError else describe(error()) for tp, error in result.items()}

    def end_offsets(self, partitions: list[TopicPartition], committed: bool = False) -> dict[TopicPartition, int]:
        """The offset after the last record of each partition; `committed` gives the last stable offset."""
        if not partitions:
            return {}
        level = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
        found = self._call("read end offsets", self.kafka.list_partition_offsets,
                           dict.fromkeys(partitions, OffsetSpec.LATEST), isolation_level=level)
        return {tp: found[tp].offset for tp in partitions}

    def start_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The first offset still held by each partition."""
        if not partitions:
            return {}
        found = self._call("read start offsets", self.kafka.list_partition_offsets,
                           dict.fromkeys(partitions, OffsetSpec.EARLIEST))
        return {tp: found[tp].offset for tp in partitions}

    def partitions_of(self, topics) -> dict[str, int]:
        """name -> partition count, for those of `topics` that exist."""
        return self._call("read topic metadata", self._partitions, topics)

    # -- writes --------------------------------------------------------------------------------------------

    def create_topics(self, topics: list[TopicState]) -> dict[str, str | None]:
        """Create topics with their partitions, replication factor and configs; name -> error or None."""
        if not topics:
            return {}
        spec = {t.name: {"num_partitions": t.partitions, "replication_factor": t.replication_factor,
                         "configs": dict(t.configs)} for t in topics}
        result, failed = self._write([t.name for t in topics], "create topics", self.kafka.create_topics, spec,
                                     timeout_ms=self._timeout_ms, raise_errors=False)
        if failed is not None:
            return failed
        errors = {t["name"]: response_error(t["error_code"], t["error_message"]) for t in result["topics"]}
        made = {t.name: t.partitions for t in topics if errors.get(t.name) is None}
        self._settle(lambda: all(self._partitions(made).get(n) == p for n, p in made.items()), bool(made))
        return errors

    def add_partitions(self, counts: dict[str, int]) -> dict[str, str | None]:
        """Raise each topic's partition count to the given total; name -> error or None."""
        if not counts:
            return {}
        result, failed = self._write(list(counts), "add partitions", self.kafka.create_partitions, dict(counts),
                                     timeout_ms=self._timeout_ms, raise_errors=False)
        if failed is not None:
            return failed
        errors = {r.name: response_error(r.error_code, r.error_message) for r in result.results}
        grown = {n: c for n, c in counts.items() if errors.get(n) is None}
        self._settle(lambda: all(self._partitions(grown).get(n, 0) >= c for n, c in grown.items()), bool(grown))
        return errors

    def alter_topic_configs(self, changes: dict[str, tuple[dict[str, str], list[str]]]) -> dict[str, str | None]:
        """Per topic, set some configs and delete others (incremental, one request); name -> error or None."""
        if not changes:
            return {}
        resources = []
        for name, (sets, deletes) in changes.items():
            ops: dict = dict(sets)
            ops.update({key: (AlterConfigOp.DELETE, None) for key in deletes})
            resources.append(ConfigResource(ConfigResourceType.TOPIC, name, ops))
        result, failed = self._write(list(changes), "alter topic configs", self.kafka.alter_configs, resources,
                                     raise_on_unknown=False, incremental=True)
        if failed is not None:
            return failed
        answers = result.get("topic", {})
        errors = {name: None if answers.get(name) == "OK" else result_error(answers.get(name, "no answer"))
                  for name in changes}
        done = {n: c for n, c in changes.items() if errors[n] is None}

        def visible() -> bool:
            now = self._read_configs(sorted(done))
            return all(n in now and all(now[n].get(k) == v for k, v in sets.items())
                       and not set(deletes) & set(now[n]) for n, (sets, deletes) in done.items())

        self._settle(visible, bool(done))
        return errors

    def create_acls(self, acls: list[AclBinding]) -> list[str | None]:
        """Create topic ACLs (one request); an error or None for each, in order."""
        if not acls:
            return []
        request = CreateAclsRequest(creations=[
            CreateAclsRequest.AclCreation(resource_type=ResourceType.TOPIC, resource_name=a.topic,
                                          resource_pattern_type=ACLResourcePatternType[a.pattern_type],
                                          principal=a.principal, host=a.host,
                                          operation=ACLOperation[a.operation],
                                          permission_type=ACLPermissionType[a.permission])
            for a in acls])
        result, failed = self._write(list(range(len(acls))), "create ACLs", self._send, request)
        if failed is not None:
            return list(failed.values())
        errors = [response_error(r.error_code, r.error_message) for r in result.results]
        made = {a for a, e in zip(acls, errors, strict=True) if e is None}
        self._settle(lambda: made <= set(self._read_acls()[0]), bool(made))
        return errors

    def delete_acls(self, acls: list[AclBinding]) -> list[str | None]:
        """Delete exactly these topic ACLs (one request); an error or None for each, in order."""
        if not acls:
            return []
        filters = [_acl(a) for a in acls]
        result, failed = self._write(list(range(len(acls))), "delete ACLs", self.kafka.delete_acls, filters)
        if failed is not None:
            return list(failed.values())
        errors = [None if error is Errors.NoError else describe(error()) for _, _, error in result]
        gone = {a for a, e in zip(acls, errors, strict=True) if e is None}
        self._settle(lambda: not gone & set(self._read_acls()[0]), bool(gone))
        return errors

    def delete_topics(self, names: list[str]) -> dict[str, str | None]:
        """Delete topics; name -> error or None."""
        if not names:
            return {}
        result, failed = self._write(list(names), "delete topics", self.kafka.delete_topics, list(names),
                                     timeout_ms=self._timeout_ms, raise_errors=False)
        if failed is not None:
            return failed
        errors = {t["name"]: response_error(t["error_code"], t.get("error_message")) for t in result["topics"]}
        gone = [n for n in names if errors.get(n) is None]
        self._settle(lambda: not self._partitions(gone), bool(gone))
        return errors

    # -- plumbing ------------------------------------------------------------------------------------------

    @property
    def _timeout_ms(self) -> int:
        return max(1, int(self.timeout * 1000))

    def _partitions(self, names) -> dict[str, int]:
        """name -> partition count in the brokers' metadata now; topics not (or no longer) there are absent."""
        metadata = self.kafka._manager.run(self.kafka._get_cluster_metadata, list(names))
        return {t["name"]: len(t["partitions"]) for t in metadata["topics"] if t["error_code"] == 0}

    def _settle(self, visible: Callable[[], bool], needed: bool = True) -> None:
        """Wait, up to the timeout, until the brokers' metadata shows what the controller accepted.

        A write is answered once the controller commits it; brokers apply it a little later. Waiting here
        keeps a plan made right after an apply from seeing the old state.
        """
        deadline = time.monotonic() + self.timeout
        while needed and time.monotonic() < deadline:
            try:
                if visible():
                    return
            except (Errors.KafkaError, MmplanError):
                pass
            time.sleep(0.1)

    def _send(self, request):
        """Send one request to any broker and wait for its response."""
        manager = self.kafka._manager
        return manager.run(manager.send, request)

    def _call(self, what: str, fn: Callable, *args, passthrough: tuple = (), **kwargs):
        """Run a read; a failure of the whole request becomes an MmplanError naming the cluster."""
        try:
            return fn(*args, **kwargs)
        except passthrough:
            raise
        except Errors.KafkaError as e:
            raise request_failure(self.alias, what, e) from None

    def _write(self, keys: list, what: str, fn: Callable, *args, **kwargs) -> tuple[Any, dict | None]:
        """Run a write: (response, None), or (None, the same error for every resource) when it failed whole."""
        try:
            return fn(*args, **kwargs), None
        except Errors.KafkaError as e:
            error = request_failure(self.alias, what, e).message
            if isinstance(e, Errors.KafkaTimeoutError | Errors.RequestTimedOutError):
                error += " (the change may still have been made)"
            return None, dict.fromkeys(keys, error)


def _binding(acl: ACL) -> AclBinding:
    pattern = acl.resource_pattern
    return AclBinding(topic=pattern.resource_name, pattern_type=pattern.pattern_type.name,
                      principal=acl.principal, host=acl.host, operation=acl.operation.name,
                      permission=acl.permission_type.name)


def _acl(binding: AclBinding) -> ACL:
    return ACL(principal=binding.principal, host=binding.host, operation=ACLOperation[binding.operation],
               permission_type=ACLPermissionType[binding.permission],
               resource_pattern=ResourcePattern(ResourceType.TOPIC, binding.topic,
                                                ACLResourcePatternType[binding.pattern_type]))


def _check_tls_files(alias: str, config: dict) -> None:
    """Load the TLS files the way the client will, so a missing file or wrong key password is named."""
    if config["security_protocol"] not in ("SSL", "SASL_SSL"):
        return
    where = f"cluster {alias}"
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = config.get(key)
        if path and not Path(path).is_file():
            raise MmplanError(f"TLS: security.{key} {path} does not exist", where=where)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if config.get("ssl_cafile"):
            context.load_verify_locations(config["ssl_cafile"])
    except (ssl.SSLError, OSError):
        raise MmplanError(f"TLS: security.ssl_cafile {config['ssl_cafile']} holds no PEM certificate",
                          where=where) from None
    try:
        if config.get("ssl_certfile"):
            context.load_cert_chain(config["ssl_certfile"], config.get("ssl_keyfile"), config.get("ssl_password"))
    except (ssl.SSLError, OSError):
        raise MmplanError("TLS: cannot load the client certificate and key", where=where,
                          hint="check security.ssl_certfile, ssl_keyfile and ssl_password (the key's password)"
                          ) from None
