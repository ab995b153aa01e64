"""Desired against live: a pure function from (compiled topology, snapshot) to a Plan.

deepdiff compares the two views; each difference becomes a typed change or a problem.
"""

from __future__ import annotations

from collections.abc import Sequence

from deepdiff import DeepDiff
from deepdiff.helper import notpresent

from mmplan.graph.compile import CompiledFlow, CompiledTopology, flow_name
from mmplan.graph.policy import ReplicationPolicy
from mmplan.mm2.connectors import CLASS_PREFIX, flow_connectors, is_secret_key
from mmplan.plan.model import APPLY_ORDER, Action, Change, ChangeKind, Plan, PlanProblem
from mmplan.state.desired import DesiredState, DesiredTopic, desired_state
from mmplan.state.live import ConnectSnapshot
from mmplan.state.snapshot import AclBinding, Snapshot
from mmplan.topology.findings import Finding
from mmplan.topology.models import Engine

MASK = "***"


def compute_plan(compiled: CompiledTopology, flows: list[CompiledFlow], snapshot: Snapshot,
                 findings: Sequence[Finding] = (), allow_delete: bool = False,
                 topology_file: str | None = None, connect: ConnectSnapshot | None = None) -> Plan:
    """The plan that makes the clusters match `flows`, given the live `snapshot` (and, for connect flows,
    the live connectors in `connect`; without it connectors are not planned)."""
    desired = desired_state(flows, snapshot)
    problems = [PlanProblem(code=f.code, severity=f.severity, message=f.message) for f in findings]
    problems += _unreachable(flows, snapshot) + _live_replication_factor(flows, snapshot)
    problems += [PlanProblem(**vars(p)) for p in desired.problems]
    changes, topic_problems = _topic_changes(desired, snapshot)
    changes += _acl_changes(desired, flows, snapshot)
    changes += _orphan_topics(compiled, flows, desired, snapshot)
    if connect is not None:
        connector_changes, connector_problems = _connector_changes(compiled, flows, connect)
        changes += connector_changes
        problems += connector_problems
    changes = sorted((c.model_copy(update={"held": True}) if c.action is Action.delete and not allow_delete else c
                      for c in changes), key=_order)
    return Plan(topology_file=topology_file, flows=[f.name for f in flows if f.settings.enabled],
                changes=changes, problems=problems + topic_problems)


def _order(change: Change) -> tuple:
    return (change.cluster, APPLY_ORDER.index(change.kind), change.topic, change.config or "",
            change.acl.describe() if change.acl else "", change.connector or "")


def _unreachable(flows: list[CompiledFlow], snapshot: Snapshot) -> list[PlanProblem]:
    aliases = dict.fromkeys(a for f in flows if f.settings.enabled for a in (f.source, f.target))
    return [PlanProblem(code="unreachable", severity="error", cluster=alias,
                        message=f"cluster {alias}: {snapshot.unreachable[alias]}")
            for alias in aliases if alias in snapshot.unreachable]


def _live_replication_factor(flows: list[CompiledFlow], snapshot: Snapshot) -> list[PlanProblem]:
    out = []
    for flow in flows:
        rf = flow.settings.replication_factor
        for alias in dict.fromkeys((flow.target, flow.source)):
            live = snapshot.clusters.get(alias)
            if flow.settings.enabled and live is not None and rf > live.brokers:
                out.append(PlanProblem(
                    code="replication-factor", severity="error", flow=flow.name, cluster=alias,
                    message=f"flow {flow.name}: replication factor {rf} exceeds the {live.brokers} live broker(s) "
                            f"of {alias}; lower replication_factor or add brokers"))
    return out


def _views(desired: DesiredState, snapshot: Snapshot) -> tuple[dict, dict]:
    """Desired and live topic views over the same clusters and topics, for deepdiff."""
    want: dict[str, dict] = {}
    have: dict[str, dict] = {}
    for (cluster, name), topic in desired.topics.items():
        want.setdefault(cluster, {})[name] = _view(topic.partitions, topic.replication_factor, topic.configs)
        have.setdefault(cluster, {})
        live = snapshot.clusters[cluster].topics.get(name)
        if live is not None:
            configs = live.configs if topic.exact else {k: v for k, v in live.configs.items() if k in topic.configs}
            have[cluster][name] = _view(live.partitions, live.replication_factor, configs)
    return want, have


def _view(partitions: int, replication_factor: int, configs: dict[str, str]) -> dict:
    return {"partitions": partitions, "replication_factor": replication_factor, "configs": dict(configs)}


def _topic_changes(desired: DesiredState, snapshot: Snapshot) -> tuple[list[Change], list[PlanProblem]]:
    want, have = _views(desired, snapshot)
    diff = DeepDiff(have, want, view="tree", threshold_to_diff_deeper=0)
    changes: list[Change] = []
    problems: list[PlanProblem] = []
    for report in ("dictionary_item_added", "dictionary_item_removed", "values_changed", "type_changes"):
        for level in sorted(diff.get(report, []), key=lambda lv: lv.path()):
            path = level.path(output_format="list")
            cluster, name = path[0], path[1]
            topic = desired.topics[(cluster, name)]
            if len(path) == 2:
                changes.append(_create(topic))
            elif path[2] == "partitions":
                _partitions(topic, level.t1, changes, problems)
            elif path[2] == "replication_factor":
                problems.append(PlanProblem(
                    code="replication-factor-drift", severity="warning", flow=topic.flow, cluster=cluster,
                    message=f"{name} on {cluster} has replication factor {level.t1}, the flow wants {level.t2}; "
                            "mmplan never reassigns replicas (use kafka-reassign-partitions)"))
            else:
                key = path[3]
                before, after = _absent(level.t1), _absent(level.t2)
                kind = ChangeKind.unset_config if after is None else ChangeKind.set_config
                changes.append(Change(kind=kind, cluster=cluster, topic=name, config=key, before=before, after=after,
                                      flow=topic.flow, reason=_why(topic)))
    return changes, problems


def _absent(value):
    """deepdiff's marker for a key one side lacks, as None."""
    return None if value is notpresent else value


def _why(topic: DesiredTopic) -> str:
    if topic.role == "remote":
        return f"remote topic of {topic.source_topic}"
    return f"{topic.role} topic"


def _create(topic: DesiredTopic) -> Change:
    after = {"partitions": topic.partitions, "replication_factor": topic.replication_factor,
             "configs": dict(sorted(topic.configs.items()))}
    return Change(kind=ChangeKind.create_topic, cluster=topic.cluster, topic=topic.name, after=after,
                  flow=topic.flow, reason=_why(topic))


def _partitions(topic: DesiredTopic, live: int, changes: list[Change], problems: list[PlanProblem]) -> None:
    if live < topic.partitions:
        changes.append(Change(kind=ChangeKind.add_partitions, cluster=topic.cluster, topic=topic.name, before=live,
                              after=topic.partitions, flow=topic.flow, reason=_why(topic)))
    else:
        problems.append(PlanProblem(
            code="partition-mismatch", severity="warning", flow=topic.flow, cluster=topic.cluster,
            message=f"{topic.name} on {topic.cluster} has {live} partitions, its source has {topic.partitions}: "
                    "keys land in different partitions than on the source, and partitions cannot be removed "
                    "(recreate the topic to fix it)"))


def _acl_changes(desired: DesiredState, flows: list[CompiledFlow], snapshot: Snapshot) -> list[Change]:
    """ACLs to create, and remote-topic ACLs whose source ACL is gone (orphans)."""
    syncing = [f for f in flows if f.settings.enabled and f.settings.sync_topic_acls.enabled
               and f.target in snapshot.clusters and snapshot.clusters[f.target].acls_readable]
    want = {f.target: set(desired.acls.get(f.target, {})) for f in syncing}
    have: dict[str, set[AclBinding]] = {cluster: set() for cluster in want}
    owner: dict[tuple[str, AclBinding], str] = {}
    for flow in filter(_owns_remote_names, syncing):
        for acl in snapshot.clusters[flow.target].acls:
            if acl.pattern_type == "LITERAL" and flow.policy.topic_source(acl.topic) == flow.source:
                have[flow.target].add(acl)
                owner[(flow.target, acl)] = flow.name
    for flow in syncing:  # identity flows: only their desired ACLs that already exist are known
        have[flow.target] |= want[flow.target] & set(snapshot.clusters[flow.target].acls)
    changes = []
    diff = DeepDiff(have, want, view="tree", threshold_to_diff_deeper=0)
    for report, kind in (("set_item_added", ChangeKind.create_acl), ("set_item_removed", ChangeKind.delete_acl)):
        for level in diff.get(report, []):
            acl = level.t2 if kind is ChangeKind.create_acl else level.t1
            cluster = level.path(output_format="list")[0]
            flow = desired.acls.get(cluster, {}).get(acl) or owner.get((cluster, acl))
            reason = "synced from the source" if kind is ChangeKind.create_acl else "orphan: its source ACL is gone"
            changes.append(Change(kind=kind, cluster=cluster, topic=acl.topic, acl=acl, flow=flow, reason=reason))
    return changes


def _owns_remote_names(flow: CompiledFlow) -> bool:
    """Only prefixed names can be recognised as a flow's own: identity names look like local topics."""
    return flow.settings.enabled and flow.settings.replication_policy.value == "default"


def _orphan_topics(compiled: CompiledTopology, flows: list[CompiledFlow], desired: DesiredState,
                   snapshot: Snapshot) -> list[Change]:
    """Remote topics on a target whose source topic is gone, or whose flow is no longer declared.

    Only prefixed (default-policy) names are recognised: an identity name looks like a local topic.
    """
    declared = {(f.source, f.target) for f in compiled.flows}
    separator = compiled.topology.defaults.separator
    changes = []
    for target in dict.fromkeys(f.target for f in flows if f.settings.enabled):
        live = snapshot.clusters.get(target)
        if live is None:
            continue
        owners = [(f.policy, f.name, f"source topic gone or no longer selected by {f.name}")
                  for f in flows if f.target == target and _owns_remote_names(f)]
        owners += [(ReplicationPolicy("default", alias, separator), flow_name(alias, target),
                    f"no flow {flow_name(alias, target)} is declared")
                   for alias in compiled.topology.clusters if alias != target and (alias, target) not in declared]
        for name in sorted(set(live.topics) - {n for c, n in desired.topics if c == target}):
            for policy, flow, reason in owners:
                if (policy.topic_source(name) == policy.source_alias and not policy.is_internal_topic(name)
                        and not policy.is_heartbeats_topic(name)):
                    changes.append(Change(kind=ChangeKind.delete_topic, cluster=target, topic=name,
                                          before={"partitions": live.topics[name].partitions}, flow=flow,
                                          reason=f"orphan: {reason}"))
                    break
    return changes


def _connector_changes(compiled: CompiledTopology, flows: list[CompiledFlow],
                       connect: ConnectSnapshot) -> tuple[list[Change], list[PlanProblem]]:
    """Connectors to create, reconfigure (including ones changed by hand) and delete, per Connect cluster;
    failed connectors and tasks as problems. A MirrorMaker 2 connector is mmplan's to delete when it
    replicates between two declared clusters for a flow that is gone, disabled or selected."""
    topology = compiled.topology
    mine = [f for f in flows if f.settings.engine is Engine.connect and f.settings.connect.urls]
    declared = {(f.source, f.target) for f in compiled.flows}
    changes: list[Change] = []
    problems: list[PlanProblem] = []
    for url in dict.fromkeys(f.settings.connect.urls[0] for f in mine):
        if url in connect.unreachable:
            problems.append(PlanProblem(code="connect-unreachable", severity="error", cluster=url,
                                        message=f"Kafka Connect {url}: {connect.unreachable[url]}"))
            continue
        live = connect.connectors.get(url, {})
        here = [f for f in mine if f.settings.connect.urls[0] == url]
        wanted = {name: (f, config) for f in here if f.settings.enabled
                  for name, config in flow_connectors(topology, f).items()}
        for name, (flow, config) in wanted.items():
            have = live.get(name)
            if have is None:
                changes.append(Change(kind=ChangeKind.create_connector, cluster=url, connector=name, flow=flow.name,
                                      after=_masked(config), reason=config["connector.class"].rsplit(".", 1)[-1]))
                continue
            current = {k: v for k, v in have.config.items() if k != "name"}
            if current != config:
                changes.append(Change(kind=ChangeKind.update_connector, cluster=url, connector=name, flow=flow.name,
                                      before=_masked(current), after=_masked(config, current),
                                      reason="its config differs from the topology"))
            problems += _failures(url, flow.name, have)
        # selected flows that name this Connect cluster, whatever their engine now
        pairs = {(f.source, f.target): f for f in flows if f.settings.connect.urls[:1] == [url]}
        for name, have in sorted(live.items()):
            pair = (have.config.get("source.cluster.alias"), have.config.get("target.cluster.alias"))
            if (name in wanted or not have.config.get("connector.class", "").startswith(CLASS_PREFIX)
                    or not set(pair) <= set(topology.clusters) or (pair in declared and pair not in pairs)):
                continue
            flow_name_ = f"{pair[0]}->{pair[1]}"
            owner = pairs.get(pair)
            why = (f"no flow {flow_name_} is declared" if owner is None
                   else "its flow runs on the daemon now" if owner.settings.engine is Engine.daemon
                   else "its flow is disabled" if not owner.settings.enabled
                   else "not one of the flow's connectors")
            changes.append(Change(kind=ChangeKind.delete_connector, cluster=url, connector=name, flow=flow_name_,
                                  before=_masked({k: v for k, v in have.config.items() if k != "name"}),
                                  reason=f"orphan: {why}"))
    return changes, problems


def _masked(config: dict[str, str], old: dict[str, str] | None = None) -> dict[str, str]:
    """Secret values replaced; a secret that differs from `old` says so without showing either value."""
    out = {}
    for key, value in config.items():
        if is_secret_key(key) and value:
            changed = old is not None and key in old and old[key] != value
            out[key] = MASK + " (changed)" if changed else MASK
        else:
            out[key] = value
    return out


def _failures(url: str, flow: str, status) -> list[PlanProblem]:
    out = []
    if status.state == "FAILED":
        out.append(PlanProblem(code="connector-failed", severity="warning", flow=flow, cluster=url,
                               message=f"connector {status.name} on {url} has FAILED: {_first_line(status.trace)}"))
    for task_id, state, trace in status.tasks:
        if state == "FAILED":
            out.append(PlanProblem(code="task-failed", severity="warning", flow=flow, cluster=url,
                                   message=f"task {task_id} of connector {status.name} on {url} has FAILED: "
                                           f"{_first_line(trace)}"))
    return out


def _first_line(trace: str | None) -> str:
    return (trace or "no trace").strip().splitlines()[0][:300] if (trace or "").strip() else "no trace"
