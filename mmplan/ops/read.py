"""Thin readers: what the ops commands need from the live clusters, as plain data for the pure modules.

Every read goes through the client layer (`mmplan.kafka.admin.Admin`, `mmplan.kafka.records`). `Live` keeps one
admin connection per cluster for the duration of a command.
"""

from __future__ import annotations

import json
import logging
import struct
from urllib.parse import quote

from kafka import TopicPartition

from mmplan.daemon.mm2_format import Checkpoint, Heartbeat, OffsetSync
from mmplan.daemon.status_record import StatusRecord
from mmplan.daemon.translate import SyncHistory, histories
from mmplan.errors import MmplanError
from mmplan.graph.compile import CompiledFlow
from mmplan.kafka.admin import Admin
from mmplan.kafka.connect import ConnectClient
from mmplan.kafka.records import Record, read_topic
from mmplan.mm2.connectors import KINDS, connector_name
from mmplan.ops.offsets import TimedCheckpoint
from mmplan.ops.status import ConnectFacts, ConnectorState
from mmplan.state.live import read_connect
from mmplan.topology.models import Topology

log = logging.getLogger("mmplan.ops")

CONNECT_SOURCE_CONNECTOR = "MirrorSourceConnector"


def connect_offsets_topic(flow: CompiledFlow) -> str:
    """MirrorMaker 2's Connect offsets topic of a dedicated-mode herder source->target, on the target."""
    return f"mm2-offsets.{flow.source}.internal"


class Live:
    """Admin connections to the clusters of a topology, opened on first use; use as a context manager."""

    def __init__(self, topology: Topology, timeout: float = 10.0):
        self.topology = topology
        self.timeout = timeout
        self._admins: dict[str, Admin] = {}

    def __enter__(self) -> Live:
        return self

    def __exit__(self, *exc) -> None:
        for admin in self._admins.values():
            admin.close()
        self._admins.clear()

    def admin(self, alias: str) -> Admin:
        if alias not in self._admins:
            self._admins[alias] = Admin.connect(alias, self.topology.clusters[alias], timeout=self.timeout)
        return self._admins[alias]

    def records(self, alias: str, topic: str, last: int | None = None) -> list[Record]:
        """The records of `topic` on `alias` ([] when it does not exist); with `last`, only that many per partition."""
        start = None
        if last is not None:
            counts = self.admin(alias).partitions_of([topic])
            if topic not in counts:
                return []
            tps = [TopicPartition(topic, p) for p in range(counts[topic])]
            start = {tp.partition: max(0, end - last) for tp, end in self.admin(alias).end_offsets(tps).items()}
        return read_topic(alias, self.topology.clusters[alias], topic, timeout=self.timeout, start=start)

    # -- the flow's internal topics --------------------------------------------------------------------------

    def checkpoints(self, flow: CompiledFlow) -> list[TimedCheckpoint]:
        """Every checkpoint in the flow's checkpoints topic on the target, in the topic's order."""
        out = []
        for r in self.records(flow.target, flow.policy.checkpoints_topic()):
            try:
                out.append(TimedCheckpoint(Checkpoint.decode(r.key or b"", r.value or b""), r.timestamp))
            except (ValueError, struct.error):  # not a checkpoint: skipped, as Java skips it
                continue
        return out

    def offset_syncs(self, flow: CompiledFlow) -> dict[tuple[str, int], SyncHistory]:
        """The flow's offset syncs (on the source), per source partition."""
        rows = []
        for r in self.records(flow.source, flow.policy.offset_syncs_topic(flow.target)):
            try:
                s = OffsetSync.decode(r.key or b"", r.value or b"")
            except (ValueError, struct.error):  # a record of another format is skipped
                continue
            rows.append((s.topic, s.partition, s.upstream_offset, s.downstream_offset))
        return histories(rows)

    def heartbeats(self, flow: CompiledFlow, last: int = 20) -> list[tuple[Heartbeat, int]]:
        """The newest heartbeats (and their record timestamps) in the flow's remote heartbeats topic on the target."""
        topic = flow.policy.remote_topic(flow.settings.heartbeats.topic)
        out = []
        for r in self.records(flow.target, topic, last=last):
            try:
                out.append((Heartbeat.decode(r.key or b"", r.value or b""), r.timestamp))
            except (ValueError, struct.error):
                continue
        return out

    def status_records(self, flow: CompiledFlow) -> list[StatusRecord]:
        """The newest status record of every daemon that ran the flow (the topic is compacted; newest wins)."""
        newest: dict[bytes, StatusRecord] = {}
        for r in self.records(flow.target, flow.policy.status_topic()):
            record = StatusRecord.decode(r.value) if r.value else None
            if record is not None and record.flow == flow.name:
                newest[r.key or b""] = record
            elif r.value is None:
                newest.pop(r.key or b"", None)
        return list(newest.values())

    def connect_positions(self, flow: CompiledFlow) -> dict[tuple[str, int], int] | None:
        """MirrorMaker 2's source positions (source topic, partition) -> next offset to replicate, from its Connect
        offsets topic on the target; None when that topic does not exist (no MirrorMaker 2 there)."""
        topic = connect_offsets_topic(flow)
        if topic not in self.admin(flow.target).partitions_of([topic]):
            return None
        out: dict[tuple[str, int], int] = {}
        for r in self.records(flow.target, topic):
            position = connect_position(r.key, r.value, flow.source)
            if position is not None:
                out[position[0]] = position[1]
        return out

    # -- engine: connect ---------------------------------------------------------------------------------------

    def connect_facts(self, flow: CompiledFlow) -> ConnectFacts:
        """The flow's three MirrorMaker 2 connectors (state None: absent) on its Connect cluster, from the REST API."""
        url = flow.settings.connect.urls[0] if flow.settings.connect.urls else "(no connect.urls)"
        snapshot = read_connect([flow], timeout=self.timeout)
        if url in snapshot.unreachable or url not in snapshot.connectors:
            return ConnectFacts(url, unreachable=snapshot.unreachable.get(url, "no Connect URL for the flow"))
        live = snapshot.connectors[url]
        out = []
        for kind in KINDS:
            name = connector_name(flow, kind)
            c = live.get(name)
            out.append(ConnectorState(name, kind, None) if c is None else
                       ConnectorState(name, kind, c.state, c.trace, [(i or 0, st, tr) for i, st, tr in c.tasks]))
        return ConnectFacts(url, out)

    def connect_offsets(self, flow: CompiledFlow) -> tuple[dict[tuple[str, int], int] | None, str]:
        """The source connector's positions (source topic, partition) -> next offset to replicate, from the Connect
        REST API (`GET /connectors/<name>/offsets`, Kafka 3.5+: the worker's offsets topic, whose name the topology
        does not know, as of its last offset flush); (None, why) when they cannot be read."""
        name = connector_name(flow, "source")
        try:
            client = ConnectClient.for_settings(flow.settings.connect, self.timeout)
            doc = client.request("GET", f"/connectors/{quote(name, safe='')}/offsets")
        except MmplanError as e:
            return None, (f"the source connector's offsets cannot be read from Kafka Connect ({e.message}), and "
                          "the worker's offset.storage.topic is not in the topology")
        out: dict[tuple[str, int], int] = {}
        for entry in (doc or {}).get("offsets") or []:  # type: ignore[union-attr]
            position = source_position(entry.get("partition"), entry.get("offset"), flow.source)
            if position is not None:
                out[position[0]] = position[1]
        return out, "from the source connector's offsets, as of the worker's last offset flush"

    # -- topics and groups ---------------------------------------------------------------------------------

    def replicated_topics(self, flow: CompiledFlow) -> dict[str, int]:
        """Source topic -> partitions, for every topic on the source the flow replicates."""
        admin = self.admin(flow.source)
        names = [t for t in admin.kafka.list_topics() if flow.hop.replicates(t)]
        return admin.partitions_of(names) if names else {}

    def end_offsets(self, alias: str, partitions: dict[str, int]) -> dict[tuple[str, int], int]:
        tps = [TopicPartition(t, p) for t, n in partitions.items() for p in range(n)]
        return {(tp.topic, tp.partition): o for tp, o in self.admin(alias).end_offsets(tps).items()}

    def group_offsets(self, alias: str, group: str) -> dict[tuple[str, int], int]:
        return {(tp.topic, tp.partition): o for tp, o in self.admin(alias).group_offsets(group).items()}


def connect_position(key: bytes | None, value: bytes | None, source: str) -> tuple[tuple[str, int], int] | None:
    """One record of a Connect offsets topic: key `["MirrorSourceConnector", {"cluster", "topic", "partition"}]`,
    value `{"offset": N}` (the last replicated upstream offset) -> ((topic, partition), N + 1); None for other
    connectors, other clusters, tombstones and records that are not JSON."""
    if not key or not value:
        return None
    try:
        name, part = json.loads(key)
        if name != CONNECT_SOURCE_CONNECTOR:
            return None
        return source_position(part, json.loads(value), source)
    except (ValueError, TypeError):
        return None


def source_position(part: object, offset: object, source: str) -> tuple[tuple[str, int], int] | None:
    """A MirrorSourceConnector offset: partition `{"cluster", "topic", "partition"}`, offset `{"offset": N}` (the
    last replicated upstream offset) -> ((topic, partition), N + 1); None for another cluster or another shape."""
    try:
        if part.get("cluster") != source:  # type: ignore[union-attr]
            return None
        return (str(part["topic"]), int(part["partition"])), int(offset["offset"]) + 1  # type: ignore[index]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
