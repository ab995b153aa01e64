"""The MirrorMaker 2 connectors a flow needs on a Kafka Connect cluster, with their configs. Pure.

Per flow: `<prefix><source>-><target>-source` (MirrorSourceConnector), `...-checkpoint`
(MirrorCheckpointConnector) and `...-heartbeat` (MirrorHeartbeatConnector). Every connector gets the
flow's MirrorMaker 2 properties, both clusters' connection settings and ByteArrayConverters (a shared
Connect cluster's JSON converters would re-encode the records). A Connect worker's own producer writes
a source connector's records to the worker's cluster, so the source and checkpoint connectors override it
(`producer.override.*`) to write to the target; the heartbeat connector writes to the flow's *source*
cluster (topic `heartbeats`), which the source connector replicates to `<source>.heartbeats` on the
target, as mmplan's daemon does. The overrides need the workers' `connector.client.config.override.policy`
to be `All` (Kafka's default since 3.0).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mmplan.errors import MmplanError
from mmplan.graph.compile import CompiledFlow
from mmplan.mm2 import settings as S
from mmplan.mm2.security import env_reference, java_security
from mmplan.topology.models import SECRET_REF, Cluster, Topology

KINDS = {"source": "MirrorSourceConnector", "checkpoint": "MirrorCheckpointConnector",
         "heartbeat": "MirrorHeartbeatConnector"}
CLASS_PREFIX = "org.apache.kafka.connect.mirror."
BYTES = "org.apache.kafka.connect.converters.ByteArrayConverter"


def connector_name(flow: CompiledFlow, kind: str) -> str:
    return f"{flow.settings.connect.name_prefix}{flow.name}-{kind}"


def flow_connectors(topology: Topology, flow: CompiledFlow,
                    env: Mapping[str, str] = os.environ) -> dict[str, dict[str, str]]:
    """Connector name -> config for one flow. Secrets are `${env:VAR}` references unless the flow's
    `connect.resolve_secrets` asks for the values (read from `env`; an unset variable is an error)."""
    s = flow.settings
    secret = _resolver(env) if s.connect.resolve_secrets else env_reference
    source, target = topology.clusters[flow.source], topology.clusters[flow.target]
    common = {"source.cluster.alias": flow.source, "target.cluster.alias": flow.target,
              "key.converter": BYTES, "value.converter": BYTES, "header.converter": BYTES}
    common.update(_cluster("source.cluster.", source, secret))
    common.update(_cluster("target.cluster.", target, secret))
    common.update(S.connector_properties(s))
    out = {}
    for kind, cls in KINDS.items():
        config = {"connector.class": CLASS_PREFIX + cls, **common}
        if kind == "heartbeat":
            config.update(_cluster("target.cluster.", source, secret))  # heartbeats go into the source cluster
            config.update(_cluster("producer.override.", source, secret))
            config["tasks.max"] = "1"
        else:
            config.update(_cluster("producer.override.", target, secret))
        if kind == "source":
            config["source.consumer.isolation.level"] = "read_committed"  # aborted transactions stay behind
            if s.exactly_once:
                config["exactly.once.support"] = "required"
        out[connector_name(flow, kind)] = dict(sorted(config.items()))
    return out


def topology_connectors(topology: Topology, flows: list[CompiledFlow],
                        env: Mapping[str, str] = os.environ) -> dict[str, dict[str, str]]:
    """The connectors of every enabled flow in `flows`."""
    out: dict[str, dict[str, str]] = {}
    for flow in flows:
        if flow.settings.enabled:
            out.update(flow_connectors(topology, flow, env))
    return out


def _cluster(prefix: str, cluster: Cluster, secret) -> dict[str, str]:
    props = {"bootstrap.servers": ",".join(cluster.bootstrap_servers), **java_security(cluster.security, secret)}
    return {prefix + k: v for k, v in props.items()}


def _resolver(env: Mapping[str, str]):
    def resolve(value: str) -> str:
        ref = SECRET_REF.fullmatch(value)
        if not ref:
            return value
        if ref.group(1) not in env:
            raise MmplanError(f"environment variable {ref.group(1)} is not set",
                              hint="connect.resolve_secrets writes secret values into connector configs; "
                                   f"export {ref.group(1)}, or drop resolve_secrets and declare the "
                                   "EnvVarConfigProvider on the workers")
        return env[ref.group(1)]
    return resolve


def is_secret_key(key: str) -> bool:
    """Config keys whose values are masked in plans: passwords and JAAS configs."""
    return key.endswith(("password", "sasl.jaas.config", "ssl.keystore.key"))
