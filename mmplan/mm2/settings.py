"""Flow settings as MirrorMaker 2 connector properties, and back: the one mapping export, import and the
Connect engine share."""

from __future__ import annotations

import math
import re

from mmplan.state.desired import NEVER_COPY
from mmplan.topology.models import FlowSettings

POLICY_CLASSES = {"default": "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
                  "identity": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"}
# MirrorMaker 2's config.properties.exclude default (DefaultConfigPropertyFilter)
MM2_CONFIG_EXCLUDE = (r"follower\.replication\.throttled\.replicas", r"leader\.replication\.throttled\.replicas",
                      r"message\.timestamp\.difference\.max\.ms", r"message\.timestamp\.type",
                      r"unclean\.leader\.election\.enable", r"min\.insync\.replicas")
MM2_REFRESH_SECONDS = 600.0
MM2_INTERNAL_RF = 3

# (flow setting path, MirrorMaker 2 property, kind)
SIMPLE = (
    (("topics", "include"), "topics", "list"),
    (("topics", "exclude"), "topics.exclude", "list"),
    (("groups", "include"), "groups", "list"),
    (("groups", "exclude"), "groups.exclude", "list"),
    (("separator",), "replication.policy.separator", "str"),
    (("replication_factor",), "replication.factor", "int"),
    (("sync_topic_configs", "enabled"), "sync.topic.configs.enabled", "bool"),
    (("sync_topic_configs", "interval"), "sync.topic.configs.interval.seconds", "seconds"),
    (("sync_topic_acls", "enabled"), "sync.topic.acls.enabled", "bool"),
    (("sync_topic_acls", "interval"), "sync.topic.acls.interval.seconds", "seconds"),
    (("sync_group_offsets", "enabled"), "sync.group.offsets.enabled", "bool"),
    (("sync_group_offsets", "interval"), "sync.group.offsets.interval.seconds", "seconds"),
    (("heartbeats", "enabled"), "emit.heartbeats.enabled", "bool"),
    (("heartbeats", "interval"), "emit.heartbeats.interval.seconds", "seconds"),
    (("checkpoints", "enabled"), "emit.checkpoints.enabled", "bool"),
    (("checkpoints", "interval"), "emit.checkpoints.interval.seconds", "seconds"),
    (("refresh_topics", "interval"), "refresh.topics.interval.seconds", "seconds"),
    (("tasks_max",), "tasks.max", "int"),
)
INTERNAL_RF = ("heartbeats.topic.replication.factor", "checkpoints.topic.replication.factor",
               "offset-syncs.topic.replication.factor")
ALIASES = {"topics.blacklist": "topics.exclude", "groups.blacklist": "groups.exclude",
           "config.properties.blacklist": "config.properties.exclude"}
KNOWN = {p for _, p, _ in SIMPLE} | set(INTERNAL_RF) | {"replication.policy.class", "config.properties.exclude"}


def get(settings: FlowSettings, path: tuple) -> object:
    value: object = settings
    for part in path:
        value = getattr(value, part)
    return value


def format_value(value: object, kind: str) -> str:
    if kind == "list":
        return ", ".join(value)  # type: ignore[arg-type]
    if kind == "bool":
        return "true" if value else "false"
    if kind == "seconds":
        return str(max(1, math.ceil(value)))  # type: ignore[arg-type]
    return str(value.value if hasattr(value, "value") else value)


def is_exact(value: object, kind: str) -> bool:
    """Whether `format_value` writes `value` without loss (sub-second intervals and comma regexes lose)."""
    if kind == "seconds":
        return float(value) == float(format_value(value, kind))  # type: ignore[arg-type]
    if kind == "list":
        return all("," not in p and p == p.strip() and p for p in value)  # type: ignore[union-attr]
    return True


def parse_value(text: str, kind: str) -> object:
    """A property's text as the flow setting; ValueError when it is not one."""
    if kind == "list":
        return [p for p in re.split(r"\s*,\s*", text.strip()) if p] if text.strip() else []
    if kind == "bool":
        if text.strip().lower() not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text.strip().lower() == "true"
    if kind == "int":
        return int(text.strip())
    if kind == "seconds":
        seconds = float(text.strip())
        if seconds <= 0:
            raise ValueError(f"{text!r}: mmplan intervals are positive")
        return seconds
    return text


def connector_properties(settings: FlowSettings) -> dict[str, str]:
    """Every MirrorMaker 2 property the flow's settings determine (those a connector or mm2.properties takes)."""
    out = {"replication.policy.class": POLICY_CLASSES[settings.replication_policy.value]}
    for path, prop, kind in SIMPLE:
        value = get(settings, path)
        if value is not None:
            out[prop] = format_value(value, kind)
    out["config.properties.exclude"] = ", ".join(NEVER_COPY + tuple(settings.sync_topic_configs.exclude))
    for prop in INTERNAL_RF:
        out[prop] = str(settings.replication_factor)
    return out


def config_exclude_from(text: str | None) -> list[str]:
    """sync_topic_configs.exclude for a config.properties.exclude value (MirrorMaker 2's default if unset):
    the patterns beyond mmplan's never-copy list."""
    if text is None:  # MirrorMaker 2's default, less what mmplan never copies anyway
        return [p for p in MM2_CONFIG_EXCLUDE if not _never_copied(p)]
    return [p for p in parse_value(text, "list") if p not in NEVER_COPY]  # type: ignore[union-attr]


def _never_copied(pattern: str) -> bool:
    """A literal config name that mmplan's never-copy list already covers."""
    name = pattern.replace("\\.", ".")
    return bool(re.fullmatch(r"[a-z0-9.\-]+", name)) and any(re.fullmatch(p, name) for p in NEVER_COPY)
