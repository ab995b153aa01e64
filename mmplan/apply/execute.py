"""Executing a plan's changes against the clusters, in dependency order, one batch per kind and cluster.

Every change reports an outcome. A failed topic creation skips that topic's other changes;
everything else goes on. Connectors are configured after the topics, one `PUT /connectors/<name>/config`
each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mmplan.errors import MmplanError
from mmplan.kafka.admin import Admin
from mmplan.kafka.connect import ConnectClient
from mmplan.plan.model import Change, ChangeKind, Plan
from mmplan.state.snapshot import TopicState


@dataclass(frozen=True)
class Outcome:
    change: Change
    error: str | None = None
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped


# Config sets and unsets of one topic go in one request, so they are one step.
_STEPS = (
    (ChangeKind.create_topic,),
    (ChangeKind.add_partitions,),
    (ChangeKind.set_config, ChangeKind.unset_config),
    (ChangeKind.create_acl,),
    (ChangeKind.delete_acl,),
    (ChangeKind.delete_topic,),
    (ChangeKind.create_connector, ChangeKind.update_connector),
    (ChangeKind.delete_connector,),
)
_CONNECTOR_KINDS = {ChangeKind.create_connector, ChangeKind.update_connector, ChangeKind.delete_connector}


def apply_changes(plan: Plan, admins: Mapping[str, Admin],
                  report: Callable[[Outcome], None] = lambda outcome: None,
                  connect: Mapping[str, ConnectClient] | None = None,
                  connector_configs: Mapping[str, dict[str, str]] | None = None) -> list[Outcome]:
    """Apply the plan's pending changes; returns (and reports as it goes) one outcome per change.

    Connector changes go to `connect` (a client per Connect URL) with the unmasked configs in
    `connector_configs` (connector name -> config), one request per connector."""
    outcomes: list[Outcome] = []
    failed_topics: set[tuple[str, str]] = set()

    def done(outcome: Outcome) -> None:
        outcomes.append(outcome)
        report(outcome)

    for kinds in _STEPS:
        batch: dict[str, list[Change]] = {}
        for change in plan.pending:
            if change.kind not in kinds:
                continue
            if (change.cluster, change.topic) in failed_topics:
                done(Outcome(change, error=f"skipped: topic {change.topic} could not be created", skipped=True))
            else:
                batch.setdefault(change.cluster, []).append(change)
        for cluster, changes in batch.items():
            if kinds[0] in _CONNECTOR_KINDS:
                for change in changes:
                    done(Outcome(change, error=_connector(connect or {}, connector_configs or {}, change)))
                continue
            for change, error in _run(admins[cluster], kinds[0], changes):
                if error and change.kind is ChangeKind.create_topic:
                    failed_topics.add((cluster, change.topic))
                done(Outcome(change, error=error))
    return outcomes


def _connector(connect: Mapping[str, ConnectClient], configs: Mapping[str, dict[str, str]],
               change: Change) -> str | None:
    """PUT the connector's config (create or replace), or DELETE it; the error as one line, or None."""
    client = connect.get(change.cluster)
    if client is None:
        return f"no Kafka Connect client for {change.cluster}"
    try:
        if change.kind is ChangeKind.delete_connector:
            client.delete(change.connector)
        elif change.connector not in configs:
            return f"the topology has no connector {change.connector}"
        else:
            client.put_config(change.connector, configs[change.connector])
    except MmplanError as e:
        return e.message
    return None


def _run(admin: Admin, kind: ChangeKind, changes: list[Change]) -> list[tuple[Change, str | None]]:
    if kind is ChangeKind.create_topic:
        results = admin.create_topics([TopicState(name=c.topic, **c.after) for c in changes])
        return [(c, results.get(c.topic)) for c in changes]
    if kind is ChangeKind.add_partitions:
        results = admin.add_partitions({c.topic: c.after for c in changes})
        return [(c, results.get(c.topic)) for c in changes]
    if kind is ChangeKind.set_config:
        per_topic: dict[str, tuple[dict[str, str], list[str]]] = {}
        for c in changes:
            sets, unsets = per_topic.setdefault(c.topic, ({}, []))
            if c.kind is ChangeKind.set_config:
                sets[c.config] = c.after
            else:
                unsets.append(c.config)
        results = admin.alter_topic_configs(per_topic)
        return [(c, results.get(c.topic)) for c in changes]
    if kind is ChangeKind.create_acl:
        return list(zip(changes, admin.create_acls([c.acl for c in changes]), strict=True))
    if kind is ChangeKind.delete_acl:
        return list(zip(changes, admin.delete_acls([c.acl for c in changes]), strict=True))
    results = admin.delete_topics([c.topic for c in changes])
    return [(c, results.get(c.topic)) for c in changes]
