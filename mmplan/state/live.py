"""Read the live state of clusters, all at once, checking first that each is the cluster it claims to be;
and the connectors of the Kafka Connect clusters that `engine: connect` flows use."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from mmplan.errors import MmplanError
from mmplan.graph.compile import CompiledFlow
from mmplan.kafka.admin import Admin
from mmplan.kafka.connect import ConnectClient, ConnectorStatus
from mmplan.state.snapshot import ClusterState, Snapshot
from mmplan.topology.models import Engine, Topology

R = TypeVar("R")


def read_snapshot(topology: Topology, aliases: Iterable[str], timeout: float = 10.0, acls: bool = True) -> Snapshot:
    """The live state of the named clusters, read concurrently with one admin connection each.

    Raises MmplanError when a cluster's live id differs from its declared `cluster_id` (checked before
    anything else is read) or when two aliases are the same live cluster. A cluster that cannot be
    reached or read is recorded in `Snapshot.unreachable` with a one-line reason.
    """
    aliases = list(dict.fromkeys(aliases))
    for alias in aliases:
        if alias not in topology.clusters:
            raise MmplanError(f"no cluster named {alias!r} in the topology")
    unreachable: dict[str, str] = {}
    admins: dict[str, Admin] = {}
    try:
        connected = _each(aliases, lambda a: Admin.connect(a, topology.clusters[a], timeout))
        ids: dict[str, str] = {}
        for alias, result in connected.items():
            if isinstance(result, Admin):
                admins[alias] = result
            else:
                unreachable[alias] = result.message
        for alias, result in _each(list(admins), lambda a: admins[a].cluster_info()[0]).items():
            if isinstance(result, MmplanError):
                unreachable[alias] = result.message
                admins.pop(alias).close()
            else:
                ids[alias] = result
        _check_identity(topology, ids)
        states = _each(list(admins), lambda a: admins[a].read_state(acls=acls))
    finally:
        for admin in admins.values():
            admin.close()
    clusters: dict[str, ClusterState] = {}
    for alias, state in states.items():
        if isinstance(state, MmplanError):
            unreachable[alias] = state.message
        else:
            clusters[alias] = state
    return Snapshot(clusters=clusters, unreachable=dict(sorted(unreachable.items())))


def _check_identity(topology: Topology, ids: dict[str, str]) -> None:
    """Each declared cluster_id matches, and no two aliases are the same live cluster."""
    for alias, found in ids.items():
        expected = topology.clusters[alias].cluster_id
        if expected and expected != found:
            raise MmplanError(f"cluster id mismatch: the topology expects {expected}, the live cluster is {found}",
                              where=f"cluster {alias}",
                              hint="bootstrap_servers point at another cluster; fix them (or cluster_id) "
                                   "before planning or applying anything")
    seen: dict[str, str] = {}
    for alias, found in ids.items():
        if found in seen:
            raise MmplanError(f"aliases {seen[found]} and {alias} are the same live cluster ({found})",
                              where=f"cluster {alias}",
                              hint="each alias must name a different cluster: check their bootstrap_servers")
        seen[found] = alias


def _each(aliases: list[str], fn: Callable[[str], R]) -> dict[str, R | MmplanError]:
    """fn for every alias in its own thread; an MmplanError is returned in place of the result."""

    def run(alias: str) -> R | MmplanError:
        try:
            return fn(alias)
        except MmplanError as e:
            return e

    if not aliases:
        return {}
    with ThreadPoolExecutor(max_workers=len(aliases), thread_name_prefix="mmplan-read") as pool:
        return dict(zip(aliases, pool.map(run, aliases), strict=True))


@dataclass(frozen=True)
class ConnectSnapshot:
    """The connectors of the Kafka Connect clusters the connect flows use, keyed by each cluster's first URL."""

    connectors: dict[str, dict[str, ConnectorStatus]] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)

    def fingerprints(self) -> dict[str, str]:
        """A hash per Connect URL of its connectors' names and configs (states change on their own)."""
        out = {}
        for url, connectors in self.connectors.items():
            doc = {name: status.config for name, status in connectors.items()}
            out[url] = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        return out


def read_connect(flows: Iterable[CompiledFlow], timeout: float = 10.0,
                 env: Mapping[str, str] = os.environ) -> ConnectSnapshot:
    """Every connector (config, state, tasks) on the Connect clusters of the `engine: connect` flows."""
    settings = {}
    for flow in flows:
        connect = flow.settings.connect
        if flow.settings.engine is Engine.connect and connect.urls:
            settings.setdefault(connect.urls[0], connect)
    results = _each(list(settings), lambda url: ConnectClient.for_settings(settings[url], timeout, env).connectors())
    snapshot = ConnectSnapshot()
    for url, result in results.items():
        if isinstance(result, MmplanError):
            snapshot.unreachable[url] = result.message
        else:
            snapshot.connectors[url] = result
    return snapshot
