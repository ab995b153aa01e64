"""The offline checks: functions of the compiled topology that return findings.

Each finding has a stable code (listed in the README) and the YAML location it concerns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from mmplan.graph.compile import CompiledFlow, CompiledTopology, compile_topology
from mmplan.graph.cycles import AnalysisTooLarge, find_collisions, find_cycles
from mmplan.topology.findings import Finding, format_path
from mmplan.topology.loader import LoadedTopology
from mmplan.topology.models import SECRET_REF, Engine, format_duration, secret_fields

MAX_TOPIC_NAME = 249
LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]+")
_LITERAL = re.compile(r"(?:[a-zA-Z0-9_-]|\\\.)+")  # a topic name written as a pattern: orders, orders\.v1
_PATTERN_FIELDS = (("topics", "include"), ("topics", "exclude"), ("groups", "include"), ("groups", "exclude"),
                   ("sync_topic_configs", "exclude"))

Check = Callable[[CompiledTopology, LoadedTopology], Iterator[Finding]]


def check_topology(loaded: LoadedTopology) -> list[Finding]:
    """Compile the topology and run every check; findings sorted by line."""
    compiled = compile_topology(loaded.topology)
    findings = [finding for check in CHECKS for finding in check(compiled, loaded)]
    return sorted(findings, key=lambda f: (f.line or 0, f.code))


def _unknown_cluster(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    clusters = compiled.topology.clusters
    for flow in compiled.flows:
        for end in ("source", "target"):
            alias = getattr(flow, end)
            if alias not in clusters:
                known = ", ".join(clusters)
                yield loaded.finding("unknown-cluster", "error",
                                     f"flow {flow.name}: {end} {alias!r} is not a declared cluster (clusters: {known})",
                                     flow.loc + (end,))


def _self_flow(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    for flow in compiled.flows:
        if flow.source == flow.target:
            yield loaded.finding("self-flow", "error",
                                 f"flow {flow.name} replicates a cluster into itself", flow.loc + ("target",))


def _duplicate_flow(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    first: dict[str, CompiledFlow] = {}
    for flow in compiled.flows:
        if flow.name in first:
            yield loaded.finding("duplicate-flow", "error",
                                 f"flow {flow.name} is declared twice (first at flows[{first[flow.name].index}]); "
                                 "merge them into one", flow.loc)
        first.setdefault(flow.name, flow)


def _bad_regex(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    topology = compiled.topology
    blocks = [(("defaults",), topology.defaults)] + [(("flows", i), f) for i, f in enumerate(topology.flows)]
    for loc, settings in blocks:
        set_here = settings.model_dump(exclude_unset=True)
        for block, key in _PATTERN_FIELDS:
            if key not in set_here.get(block, {}):
                continue
            for i, pattern in enumerate(getattr(getattr(settings, block), key)):
                error = regex_error(pattern)
                if error:
                    yield loaded.finding("bad-regex", "error", f"{pattern!r} is not a valid regular expression: "
                                                               f"{error}", loc + (block, key, i))


def regex_error(pattern: str) -> str | None:
    """Why Python cannot compile `pattern`, or None."""
    try:
        re.compile(pattern)
    except re.error as e:
        return str(e)
    return None


def _analysable(compiled: CompiledTopology) -> list[CompiledFlow]:
    """Enabled flows whose filters all compile (bad-regex reports the others)."""
    return [f for f in compiled.enabled_flows
            if not any(regex_error(p) for p in f.settings.topics.include + f.settings.topics.exclude)]


def _cycle(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    try:
        cycles = find_cycles([f.hop for f in _analysable(compiled)])
    except AnalysisTooLarge as e:
        yield loaded.finding("cycle", "error", f"the cycle check gave up ({e}): too many flows whose filters "
                             "overlap to prove the topology free of cycles; narrow the filters", ("flows",))
        return
    for cycle in cycles:
        yield loaded.finding("cycle", "error",
                             f"replication cycle: {cycle.describe()}; use the default replication policy, "
                             "disable a flow, or narrow the filters", ("flows", cycle.flow_indices[0]))


def _topic_collision(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    for collision in find_collisions([f.hop for f in _analysable(compiled)]):
        a, b = collision.flow_indices
        yield loaded.finding("topic-collision", "error",
                             f"{collision.describe()} (flows[{a}] and flows[{b}])", ("flows", b))


def _alias_names(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    for alias in compiled.topology.clusters:
        if not LEGAL_NAME.fullmatch(alias):
            yield loaded.finding("bad-name", "error",
                                 f"cluster alias {alias!r} cannot be part of a Kafka topic name "
                                 "(use letters, digits, '.', '_' and '-')", ("clusters", alias))
    for flow in compiled.enabled_flows:
        separator = flow.settings.separator
        for end in ("source", "target"):
            alias = getattr(flow, end)
            if separator in alias:
                yield loaded.finding("alias-separator", "error",
                                     f"alias {alias!r} contains the separator {separator!r} of flow {flow.name}, "
                                     "so remote topic names are ambiguous; rename the alias or change the "
                                     "separator", ("clusters", alias))
        if not LEGAL_NAME.fullmatch(separator):
            yield loaded.finding("bad-name", "error",
                                 f"separator {separator!r} cannot be part of a Kafka topic name",
                                 flow.loc + ("separator",))


def _remote_names(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    """Literal include patterns name concrete topics: their remote names must be legal."""
    for flow in compiled.enabled_flows:
        for i, pattern in enumerate(flow.settings.topics.include):
            if not _LITERAL.fullmatch(pattern):
                continue  # a real pattern, not a literal topic name
            remote = flow.policy.remote_topic(pattern.replace("\\.", "."))
            if len(remote) > MAX_TOPIC_NAME:
                yield loaded.finding("bad-name", "error",
                                     f"remote topic name for {pattern!r} is {len(remote)} characters; Kafka allows "
                                     f"{MAX_TOPIC_NAME}", flow.loc + ("topics", "include", i))


def _replication_factor(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    """Remote and checkpoints topics live on the target, heartbeats and offset syncs on the source:
    all take the flow's replication factor."""
    for flow in compiled.enabled_flows:
        rf = flow.settings.replication_factor
        for alias, holds in ((flow.target, "remote and checkpoints topics"),
                             (flow.source, "heartbeats and offset-syncs topics")):
            brokers = compiled.topology.clusters[alias].brokers
            if brokers is not None and rf > brokers:
                yield loaded.finding("replication-factor", "error",
                                     f"flow {flow.name}: replication factor {rf} exceeds the {brokers} broker(s) "
                                     f"of {alias}, so its {holds} could not be created",
                                     _where_set(loaded, flow, ("replication_factor",)))


def _rpo(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    for flow in compiled.enabled_flows:
        s = flow.settings
        if s.rpo is None:
            continue
        rpo = format_duration(s.rpo)
        problems = []
        if not s.checkpoints.enabled:
            problems.append("checkpoints are disabled")
        elif s.checkpoints.interval > s.rpo:
            problems.append(f"checkpoints run every {format_duration(s.checkpoints.interval)}")
        if not s.heartbeats.enabled:
            problems.append("heartbeats are disabled, so nothing measures the lag")
        elif s.heartbeats.interval > s.rpo:
            problems.append(f"heartbeats run every {format_duration(s.heartbeats.interval)}")
        if problems:
            yield loaded.finding("rpo", "error",
                                 f"flow {flow.name} declares rpo {rpo} but {' and '.join(problems)}; "
                                 f"set intervals no longer than {rpo}", _where_set(loaded, flow, ("rpo",)))


def _no_heartbeats(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    for flow in compiled.enabled_flows:
        if not flow.settings.heartbeats.enabled:
            yield loaded.finding("no-heartbeats", "warning",
                                 f"flow {flow.name} has heartbeats disabled: nothing will notice if replication "
                                 "silently stops", _where_set(loaded, flow, ("heartbeats", "enabled")))


def _unknown_brokers(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    targets = sorted({f.target for f in compiled.enabled_flows})
    for alias in targets:
        if compiled.topology.clusters[alias].brokers is None:
            yield loaded.finding("unknown-brokers", "warning",
                                 f"cluster {alias} declares no `brokers:`, so the replication factor is checked "
                                 "only against the live cluster", ("clusters", alias))


def _plaintext_secret(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    for loc, value in secret_fields(compiled.topology):
        if SECRET_REF.fullmatch(value):
            continue
        if loc[0] == "clusters":
            owner, name, stem = f"cluster {loc[1]}", loc[-1], loc[1]
        else:
            owner, name, stem = format_path(loc[:-2]), "connect.password", "connect"
        variable = stem.upper().replace("-", "_").replace(".", "_") + "_PASSWORD"
        yield loaded.finding("plaintext-secret", "warning",
                             f"{owner}: {name} is written in the file; use a reference such as "
                             "${" + variable + "} and set that variable", loc)


def _connect(compiled: CompiledTopology, loaded: LoadedTopology) -> Iterator[Finding]:
    """Connect-engine settings that cannot work, and connect-only settings on daemon flows."""
    for flow in compiled.enabled_flows:
        s = flow.settings
        if s.engine is Engine.connect:
            if not s.connect.urls:
                yield loaded.finding("connect-urls", "error",
                                     f"flow {flow.name} runs on Kafka Connect but names no worker: set "
                                     "connect.urls (e.g. [http://connect-1:8083])",
                                     _where_set(loaded, flow, ("engine",)))
            for i, url in enumerate(s.connect.urls):
                if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
                    yield loaded.finding("connect-urls", "error", f"flow {flow.name}: {url!r} is not an http(s) URL",
                                         _where_set(loaded, flow, ("connect", "urls", i)))
            if (s.connect.username is None) != (s.connect.password is None):
                yield loaded.finding("connect-auth", "error",
                                     f"flow {flow.name}: basic auth needs both connect.username and connect.password",
                                     _where_set(loaded, flow, ("connect",)))
            for block, key in _PATTERN_FIELDS:
                for i, pattern in enumerate(getattr(getattr(s, block), key)):
                    if "," in pattern:
                        yield loaded.finding("connect-comma", "error",
                                             f"flow {flow.name}: MirrorMaker 2 splits {block}.{key} on commas, so "
                                             f"{pattern!r} cannot be passed to its connectors; write it without a "
                                             "comma (e.g. [,] -> \\x2c)", _where_set(loaded, flow, (block, key, i)))
            if s.heartbeats.topic != "heartbeats":
                yield loaded.finding("connect-heartbeats-topic", "error",
                                     f"flow {flow.name}: MirrorMaker 2's connectors always use the topic "
                                     f"`heartbeats`, not {s.heartbeats.topic!r}; remove heartbeats.topic or run "
                                     "the flow with the daemon engine",
                                     _where_set(loaded, flow, ("heartbeats", "topic")))
        elif s.tasks_max is not None:
            yield loaded.finding("tasks-max", "warning",
                                 f"flow {flow.name}: tasks_max only applies to `engine: connect`; the daemon "
                                 "ignores it (run more `mmplan run` processes to scale out)",
                                 _where_set(loaded, flow, ("tasks_max",)))


def _where_set(loaded: LoadedTopology, flow: CompiledFlow, key: tuple) -> tuple:
    """The flow's own key if it sets it, else the defaults' key, else the flow."""
    for loc in (flow.loc + key, ("defaults",) + key):
        if loc in loaded.lines:
            return loc
    return flow.loc


CHECKS: tuple[Check, ...] = (
    _unknown_cluster, _self_flow, _duplicate_flow, _bad_regex, _alias_names, _remote_names, _cycle,
    _topic_collision, _replication_factor, _rpo, _no_heartbeats, _unknown_brokers, _plaintext_secret, _connect,
)
