"""An mm2.properties (MirrorMaker 2 dedicated mode) as topology data, with a note for every setting
mmplan cannot express. Pure: text in, data and notes out.

Top-level properties become `defaults:`, `<alias>.` properties the cluster, `<A>-><B>.` properties the
flow. Where MirrorMaker 2's default differs from mmplan's (`refresh.topics.interval.seconds`,
`config.properties.exclude`), an unset property imports as MirrorMaker 2's value, so the flows behave
as they did. A `# mmplan:` comment block written by `mmplan export` is laid over the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from mmplan.mm2 import settings as S
from mmplan.mm2.properties import Properties, parse
from mmplan.mm2.security import SECURITY_KEYS, parse_security
from mmplan.topology.models import FlowSettings, deep_merge, format_duration, parse_duration

BLOCK = "mmplan:"
WORKER_KEYS = re.compile(r"(offset|status|config)\.storage\..*|group\.id|(key|value|header)\.converter.*|"
                         r"config\.providers.*|dedicated\.mode\..*|listeners|rest\..*")


@dataclass
class Imported:
    data: dict
    notes: list[str] = field(default_factory=list)


def import_properties(text: str) -> Imported:
    """Topology data for an mm2.properties text."""
    props = parse(text)
    notes: list[str] = []
    values = dict(props.values)
    for old, new in S.ALIASES.items():
        for key in [k for k in values if k == old or k.endswith("." + old)]:
            renamed = key[: len(key) - len(old)] + new
            notes.append(f"{key} (line {props.lines[key]}): the pre-4.0 name of {new}, which Kafka 4 ignores; "
                         f"imported as {new}")
            values.setdefault(renamed, values[key])
            del values[key]
    for key, chars in props.dropped_backslashes.items():
        shown = ", ".join(sorted({"\\" + c for c in chars}))
        notes.append(f"{key} (line {props.lines[key]}): Java reads {shown} as the bare character, so the value "
                     f"is {values.get(key, props.values[key])!r}; write a double backslash for a literal escape")
    aliases = [a.strip() for a in values.pop("clusters", "").split(",") if a.strip()]
    if not aliases:
        notes.append("no `clusters = ...` line: there is nothing to import")
    cluster_props: dict[str, dict[str, str]] = {a: {} for a in aliases}
    flow_props: dict[tuple[str, str], dict[str, str]] = {}
    top: dict[str, str] = {}
    for key, value in values.items():
        owner = _owner(key, aliases)
        if owner is None:
            top[key] = value
        elif isinstance(owner[0], tuple):
            flow_props.setdefault(owner[0], {})[owner[1]] = value
        else:
            cluster_props[owner[0]][owner[1]] = value
    data: dict = {"version": 1}
    defaults = _settings(top, "", notes, top_level=True)
    if defaults:
        data["defaults"] = defaults
    data["clusters"] = {a: _cluster(a, cluster_props[a], top, notes) for a in aliases}
    data["flows"] = [dict(source=s, target=t, **_flow(s, t, p, notes)) for (s, t), p in flow_props.items()]
    for key in top:
        if key not in S.KNOWN and key not in SECURITY_KEYS:
            what = "a Connect worker setting" if WORKER_KEYS.fullmatch(key) else "not expressible in a topology"
            notes.append(f"{key} (line {props.lines.get(key, '?')}): {what}; not imported")
    _apply_block(data, _block(props), notes)
    _check_tasks_max(data, notes)
    _check_internal_rf(data, top, flow_props, notes)
    return Imported(data, notes)


def _owner(key: str, aliases: list[str]) -> tuple | None:
    """((source, target), rest) for `A->B.rest`, (alias, rest) for `alias.rest`, None for a top-level key."""
    by_length = sorted(aliases, key=len, reverse=True)
    if "->" in key:
        source, _, rest = key.partition("->")
        for target in by_length:
            if source in aliases and rest.startswith(target + "."):
                return (source, target), rest[len(target) + 1:]
        return None
    for alias in by_length:
        if key.startswith(alias + "."):
            return alias, key[len(alias) + 1:]
    return None


def _settings(props: dict[str, str], where: str, notes: list[str], top_level: bool = False) -> dict:
    """Flow settings (as data) for MirrorMaker 2 properties; only what `props` sets, plus MirrorMaker 2's
    own defaults at the top level where they differ from mmplan's."""
    out: dict = {}
    for path, prop, kind in S.SIMPLE:
        if prop not in props:
            continue
        try:
            value = S.parse_value(props[prop], kind)
        except ValueError as e:
            notes.append(f"{where}{prop}: {e}; not imported")
            continue
        _put(out, path, format_duration(value) if kind == "seconds" else value)  # type: ignore[arg-type]
    policy = props.get("replication.policy.class")
    if policy is not None:
        kinds = {cls: kind for kind, cls in S.POLICY_CLASSES.items()}
        if policy in kinds:
            out["replication_policy"] = kinds[policy]
        else:
            notes.append(f"{where}replication.policy.class={policy}: mmplan knows the default and identity "
                         "policies only; imported as the default policy")
    if "config.properties.exclude" in props or top_level:
        exclude = S.config_exclude_from(props.get("config.properties.exclude"))
        if exclude:
            _put(out, ("sync_topic_configs", "exclude"), exclude)
    if top_level and "refresh.topics.interval.seconds" not in props:
        _put(out, ("refresh_topics", "interval"), format_duration(S.MM2_REFRESH_SECONDS))
        notes.append("refresh.topics.interval.seconds is unset: imported as MirrorMaker 2's 10m; mmplan's default "
                     "is 60s (remove refresh_topics to pick up new topics sooner)")
    return out


def _put(out: dict, path: tuple, value: object) -> None:
    for part in path[:-1]:
        out = out.setdefault(part, {})
    out[path[-1]] = value


def _cluster(alias: str, props: dict[str, str], top: dict[str, str], notes: list[str]) -> dict:
    if "bootstrap.servers" not in props:
        notes.append(f"{alias}.bootstrap.servers is missing: the topology will not validate without it")
    cluster: dict = {"bootstrap_servers": props.get("bootstrap.servers", "")}
    security_props = {k: v for k, v in top.items() if k in SECURITY_KEYS}
    security_props.update({k: v for k, v in props.items() if k in SECURITY_KEYS})
    security, more = parse_security(security_props, alias)
    notes += more
    if security:
        cluster["security"] = security
    for key in props:
        if key != "bootstrap.servers" and key not in SECURITY_KEYS:
            notes.append(f"{alias}.{key}: not expressible in a topology; not imported")
    return cluster


def _flow(source: str, target: str, props: dict[str, str], notes: list[str]) -> dict:
    where = f"{source}->{target}."
    flow: dict = {}
    enabled = props.get("enabled", "false").strip().lower()
    flow["enabled"] = enabled == "true"
    if "enabled" not in props:
        notes.append(f"{where}enabled is unset: MirrorMaker 2 leaves the flow off; imported as enabled: false")
    flow.update(_settings(props, where, notes))
    for key in props:
        if key != "enabled" and key not in S.KNOWN:
            notes.append(f"{where}{key}: not expressible in a topology; not imported")
    return flow


def _block(props: Properties) -> dict:
    """The `# mmplan:` comment block: the YAML after the marker line, each line's `# ` removed."""
    lines: list[str] = []
    inside = False
    for _, text in props.comments:
        body = text[1:] if text.startswith(" ") else text
        if body.strip() == BLOCK:
            inside = True
        elif inside and body.startswith("  "):
            lines.append(body)
        elif inside:
            break
    return yaml.safe_load("\n".join(lines)) or {} if lines else {}


def _apply_block(data: dict, block: dict, notes: list[str]) -> None:
    if not isinstance(block, dict):
        notes.append("the `# mmplan:` block is not a mapping; ignored")
        return
    data["defaults"] = deep_merge(data.get("defaults", {}), block.get("defaults") or {})
    if not data["defaults"]:
        del data["defaults"]
    for alias, extra in (block.get("clusters") or {}).items():
        if alias in data["clusters"]:
            data["clusters"][alias] = deep_merge(data["clusters"][alias], extra)
    flows = {f"{f['source']}->{f['target']}": f for f in data["flows"]}
    for name, extra in (block.get("flows") or {}).items():
        if name in flows:
            flows[name].update(deep_merge(flows[name], extra))


def _resolved(data: dict, flow: dict) -> FlowSettings:
    merged = deep_merge(data.get("defaults", {}), {k: v for k, v in flow.items() if k not in ("source", "target")})
    return FlowSettings.model_validate(merged)


def _check_tasks_max(data: dict, notes: list[str]) -> None:
    """tasks.max sizes MirrorMaker 2's connectors; a daemon flow has none, so it is listed and dropped."""
    for holder in [data.get("defaults", {})] + data["flows"]:
        if "tasks_max" in holder:
            engine = holder.get("engine") or data.get("defaults", {}).get("engine", "daemon")
            if engine != "connect":
                notes.append(f"tasks.max={holder.pop('tasks_max')}: only `engine: connect` flows have tasks; "
                             "the daemon scales by running more `mmplan run` processes; not imported")


def _check_internal_rf(data: dict, top: dict, flow_props: dict, notes: list[str]) -> None:
    """MirrorMaker 2 sizes its internal topics on their own; mmplan gives them the flow's replication factor."""
    for flow in data["flows"]:
        try:
            rf = _resolved(data, flow).replication_factor
        except ValueError:
            continue
        own = flow_props.get((flow["source"], flow["target"]), {})
        for prop in S.INTERNAL_RF:
            value = own.get(prop, top.get(prop, str(S.MM2_INTERNAL_RF)))
            if value.strip() != str(rf):
                notes.append(f"{flow['source']}->{flow['target']}: {prop} is {value.strip()}"
                             f"{'' if prop in own or prop in top else ' (MirrorMaker 2 default)'}; mmplan creates "
                             f"internal topics with the flow's replication factor {rf}")


def prune_defaults(data: dict) -> dict:
    """`data` without `defaults:` values equal to the built-in ones (they say nothing)."""
    builtin = FlowSettings().model_dump(mode="json")

    def prune(values: dict, base: dict) -> dict:
        out = {}
        for k, v in values.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                v = prune(v, base[k])
                if v:
                    out[k] = v
            elif _normal(v) != _normal(base.get(k, object())):
                out[k] = v
        return out

    defaults = prune(data.get("defaults", {}), builtin)
    rest = {k: v for k, v in data.items() if k != "defaults"}
    return {"version": rest.pop("version", 1), **({"defaults": defaults} if defaults else {}), **rest}


def _normal(value: object) -> object:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            return value
    return value


def topology_yaml(data: dict, header: str = "") -> str:
    """Topology data as a YAML file, short collections inline."""
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    return (header + "\n" if header else "") + body


_PLUMBING = re.compile(r"connector\.class|name|(source|target)\.cluster\..*|producer\.override\..*|"
                       r"(key|value|header)\.converter|source\.consumer\.isolation\.level|exactly\.once\.support")


def import_connectors(connectors: dict[str, dict[str, str]], url: str) -> Imported:
    """Topology data for the MirrorMaker 2 connectors of a running Connect cluster (name -> config): one
    `engine: connect` flow per source/target pair, with the settings of its connectors."""
    from mmplan.mm2.properties import line  # the connectors become an mm2.properties, read as one

    clusters: dict[str, dict[str, str]] = {}
    flows: dict[tuple[str, str], dict[str, str]] = {}
    names: dict[tuple[str, str], str] = {}
    notes: list[str] = []
    for name, config in sorted(connectors.items()):
        kind = config.get("connector.class", "").rsplit(".", 1)[-1]
        if kind not in ("MirrorSourceConnector", "MirrorCheckpointConnector", "MirrorHeartbeatConnector"):
            continue
        pair = (config.get("source.cluster.alias", "source"), config.get("target.cluster.alias", "target"))
        if kind != "MirrorHeartbeatConnector":  # mmplan's heartbeat connector points its target at the source
            for end, alias in zip(("source", "target"), pair, strict=True):
                clusters.setdefault(alias, {}).update(
                    {k[len(end) + 9:]: v for k, v in config.items() if k.startswith(f"{end}.cluster.")
                     and (k[len(end) + 9:] == "bootstrap.servers" or k[len(end) + 9:] in SECURITY_KEYS)})
        own = flows.setdefault(pair, {})
        for key, value in config.items():
            if not _PLUMBING.fullmatch(key) and key != "tasks.max":
                own.setdefault(key, value)
        if kind == "MirrorSourceConnector" and "tasks.max" in config:
            own["tasks.max"] = config["tasks.max"]
        if kind == "MirrorSourceConnector":
            names[pair] = name
    lines = [line("clusters", ", ".join(clusters))]
    lines += [line(f"{alias}.{k}", v) for alias, props in clusters.items() for k, v in props.items()]
    for (source, target), props in flows.items():
        lines.append(line(f"{source}->{target}.enabled", "true"))
        lines += [line(f"{source}->{target}.{k}", v) for k, v in props.items() if k != "tasks.max"]
    imported = import_properties("\n".join(lines) + "\n")
    imported.notes = [n for n in imported.notes if not n.startswith("refresh.topics.interval.seconds is unset")]
    for flow in imported.data["flows"]:
        pair = (flow["source"], flow["target"])
        stem = f"{pair[0]}->{pair[1]}-source"
        name = names.get(pair, "")
        prefix = name[: -len(stem)] if name.endswith(stem) else ""
        if name and not name.endswith(stem):
            notes.append(f"connector {name}: mmplan names connectors <prefix>{stem}; it will create its own "
                         "and hold the old ones as deletes")
        flow.update({"engine": "connect", "connect": {"urls": [url], **({"name_prefix": prefix} if prefix else {})}})
        tasks = flows.get(pair, {}).get("tasks.max")
        if tasks and tasks.strip().isdigit():
            flow["tasks_max"] = int(tasks)
    imported.notes += notes
    return imported
