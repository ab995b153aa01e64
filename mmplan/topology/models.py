"""The topology file, version 1, as pydantic models.

Every flow setting has MirrorMaker 2's built-in default (see the README's reference).
A flow's settings are resolved in three layers: built-in defaults, then the file's
`defaults:` block, then the flow itself; nested blocks merge key by key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
SECRET_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def parse_duration(value: Any) -> Any:
    """`5s`, `10m`, `1h`, `250ms` or a bare number of seconds, as float seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 5s, 10m, 1h")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    raise ValueError(f"{value!r} is not a duration: write 5s, 10m, 1h or a number of seconds")


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration: 1h, 10m, 5s, 250ms."""
    for unit in ("d", "h", "m", "s"):
        n = seconds / _UNIT_SECONDS[unit]
        if n >= 1 and n == int(n):
            return f"{int(n)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(gt=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": _DURATION.pattern},
            ],
            "description": "seconds, or a string like 250ms, 5s, 10m, 1h",
        }
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReplicationPolicyKind(str, Enum):
    default = "default"
    identity = "identity"


class Filter(_Strict):
    """Python regular expressions matched against the whole name (re.fullmatch)."""

    include: list[str] = Field(default_factory=lambda: [".*"])
    exclude: list[str] = Field(default_factory=list)


class TopicFilter(Filter):
    # MirrorMaker 2 4.x's default topics.exclude
    exclude: list[str] = Field(default_factory=lambda: [r"mm2.*\.internal", r".*\.replica", "__.*"])


class GroupFilter(Filter):
    # MirrorMaker 2's default groups.exclude
    exclude: list[str] = Field(default_factory=lambda: ["console-consumer-.*", "connect-.*", "__.*"])


class SyncTopicConfigs(_Strict):
    enabled: bool = True
    exclude: list[str] = Field(
        default_factory=list, description="regexes of config names never to copy, added to the built-in list"
    )
    interval: Duration = 600.0


class SyncTopicAcls(_Strict):
    enabled: bool = True
    interval: Duration = 600.0


class SyncGroupOffsets(_Strict):
    enabled: bool = False
    interval: Duration = 60.0


class Heartbeats(_Strict):
    enabled: bool = True
    interval: Duration = 1.0
    topic: str = Field("heartbeats", min_length=1)


class Checkpoints(_Strict):
    enabled: bool = True
    interval: Duration = 60.0


class RefreshTopics(_Strict):
    interval: Duration = 60.0


class Engine(str, Enum):
    daemon = "daemon"
    connect = "connect"


class Connect(_Strict):
    """Where and how a flow with `engine: connect` runs: a Kafka Connect cluster's REST API."""

    urls: list[str] = Field(default_factory=list, description="REST URLs of the Connect workers, tried in order")
    username: str | None = Field(None, description="basic-auth user of the REST API")
    password: str | None = Field(None, description="basic-auth password: a ${VAR} reference")
    name_prefix: str = Field("", description="prepended to the connector names (`<prefix><source>-><target>-source`)")
    resolve_secrets: bool = Field(False, description="write resolved secrets into connector configs instead of "
                                  "${env:VAR} references (for workers without the EnvVarConfigProvider)")


class FlowSettings(_Strict):
    """Everything a flow may set, with its built-in default; `defaults:` takes the same keys."""

    enabled: bool = True
    topics: TopicFilter = Field(default_factory=TopicFilter)
    groups: GroupFilter = Field(default_factory=GroupFilter)
    replication_policy: ReplicationPolicyKind = ReplicationPolicyKind.default
    separator: str = Field(".", min_length=1)
    replication_factor: int = Field(2, ge=1)
    sync_topic_configs: SyncTopicConfigs = Field(default_factory=SyncTopicConfigs)
    sync_topic_acls: SyncTopicAcls = Field(default_factory=SyncTopicAcls)
    sync_group_offsets: SyncGroupOffsets = Field(default_factory=SyncGroupOffsets)
    heartbeats: Heartbeats = Field(default_factory=Heartbeats)
    checkpoints: Checkpoints = Field(default_factory=Checkpoints)
    refresh_topics: RefreshTopics = Field(default_factory=RefreshTopics)
    rpo: Duration | None = Field(None, description="recovery point objective of this flow")
    allow_delete: bool = Field(False, description="let `mmplan run` apply this flow's deletes (orphaned remote "
                               "topics and ACLs) instead of holding them for `mmplan apply --allow-delete`")
    exactly_once: bool = Field(False, description="write records and the source position in one transaction "
                               "on the target (`mmplan run --exactly-once` forces it on)")
    engine: Engine = Field(Engine.daemon, description="daemon: `mmplan run`; connect: MirrorMaker 2 connectors "
                           "on a Kafka Connect cluster")
    connect: Connect = Field(default_factory=Connect)
    tasks_max: int | None = Field(None, ge=1, description="tasks.max of the connectors (connect engine only)")


class Flow(FlowSettings):
    source: str
    target: str


class Security(_Strict):
    """Client security settings; passwords should be `${VAR}` references."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = None
    ssl_check_hostname: bool = True


SECRET_FIELDS = ("sasl_password", "ssl_password")


def secret_fields(topology: Topology) -> Iterator[tuple[tuple, str]]:
    """Every secret the topology holds, as (YAML path, value): cluster passwords and Connect passwords."""
    for alias, cluster in topology.clusters.items():
        for name in SECRET_FIELDS:
            value = getattr(cluster.security, name, None) if cluster.security else None
            if value is not None:
                yield ("clusters", alias, "security", name), value
    blocks = [(("defaults",), topology.defaults)] + [(("flows", i), f) for i, f in enumerate(topology.flows)]
    for loc, settings in blocks:
        if settings.connect.password is not None:
            yield loc + ("connect", "password"), settings.connect.password


class Cluster(_Strict):
    bootstrap_servers: Annotated[
        list[str],
        WithJsonSchema({"anyOf": [{"type": "array", "items": {"type": "string"}, "minItems": 1},
                                  {"type": "string", "description": "comma-separated host:port list"}]}),
    ] = Field(min_length=1)
    brokers: int | None = Field(None, ge=1, description="the broker count the cluster is expected to have")
    cluster_id: str | None = Field(None, description="the live cluster must have this id")
    security: Security | None = None

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, value: list[str]) -> list[str]:
        for server in value:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value


class Topology(_Strict):
    """A topology file, version 1."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="mmplan topology",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    version: Literal[1]
    defaults: FlowSettings = Field(default_factory=FlowSettings)
    clusters: dict[str, Cluster] = Field(min_length=1)
    flows: list[Flow] = Field(default_factory=list)


def resolve_flow(defaults: FlowSettings, flow: Flow) -> FlowSettings:
    """The settings a flow runs with: built-ins, overlaid by `defaults:`, overlaid by the flow."""
    merged = deep_merge(defaults.model_dump(exclude_unset=True), flow.model_dump(exclude_unset=True))
    merged.pop("source", None)
    merged.pop("target", None)
    return FlowSettings.model_validate(merged)


def deep_merge(base: dict, over: dict) -> dict:
    """`over` laid on `base`; nested mappings merge key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
