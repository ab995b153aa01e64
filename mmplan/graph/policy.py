"""MirrorMaker 2 replication policies and topic selection, as Kafka 4.1 implements them.

Pure functions of names, no I/O. ``ReplicationPolicy`` is ``DefaultReplicationPolicy`` (``kind="default"``)
or ``IdentityReplicationPolicy`` configured with the flow's source alias (``kind="identity"``), with the
internal-topic separator toggle at its default (on). ``Hop.replicates`` is ``MirrorSourceConnector
.shouldReplicateTopic`` with heartbeats replication on and the ``isCycle`` rule of Kafka up to 4.3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

POLICY_KINDS = ("default", "identity")


def java_split(text: str, separator: str) -> list[str]:
    """``text.split(Pattern.quote(separator))`` in Java: trailing empty strings are dropped."""
    parts = text.split(separator)
    while parts and not parts[-1]:
        parts.pop()
    return parts


@dataclass(frozen=True)
class ReplicationPolicy:
    """How one flow names remote topics and recognises remote, heartbeats and internal topics."""

    kind: str
    source_alias: str
    separator: str = "."
    heartbeats_topic: str = "heartbeats"

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"unknown replication policy {self.kind!r}")
        if not self.separator or not self.heartbeats_topic:
            raise ValueError("the separator and the heartbeats topic must not be empty")

    def _identity(self, topic: str) -> bool:
        """Identity naming applies: identity policy and ``topic`` does not end with the heartbeats name."""
        return self.kind == "identity" and not topic.endswith(self.heartbeats_topic)

    def remote_topic(self, topic: str) -> str:
        """Name on the target of the source topic ``topic`` (``formatRemoteTopic``)."""
        return topic if self._identity(topic) else self.source_alias + self.separator + topic

    def topic_source(self, topic: str) -> str | None:
        """Alias of the cluster ``topic`` came from, or None for a local topic (``topicSource``)."""
        if self._identity(topic):
            return self.source_alias
        parts = java_split(topic, self.separator)
        return parts[0] if len(parts) >= 2 else None

    def upstream_topic(self, topic: str) -> str | None:
        """Name of ``topic`` on the cluster it came from, or None (``upstreamTopic``)."""
        if self._identity(topic):
            return topic
        source = self.topic_source(topic)
        return None if source is None else topic[len(source) + len(self.separator):]

    def original_topic(self, topic: str) -> str:
        """Name of ``topic`` on the cluster where it started (``originalTopic``)."""
        while (upstream := self.upstream_topic(topic)) is not None and upstream != topic:
            topic = upstream
        return topic

    def is_heartbeats_topic(self, topic: str) -> bool:
        return self.original_topic(topic) == self.heartbeats_topic

    @property
    def internal_suffix(self) -> str:
        return self.separator + "internal"

    @property
    def checkpoints_suffix(self) -> str:
        return self.separator + "checkpoints" + self.internal_suffix

    def is_internal_topic(self, topic: str) -> bool:
        """Kafka 4.x ``isInternalTopic``: MM2's own topics, or a name starting with ``__`` or ``.``."""
        mm2 = topic.startswith("mm2") and topic.endswith(self.internal_suffix)
        return mm2 or topic.endswith(self.checkpoints_suffix) or topic.startswith(("__", "."))

    def is_cycle(self, topic: str, target_alias: str) -> bool:
        """Kafka ≤ 4.3 ``isCycle``: ``target_alias`` is in the chain of sources of ``topic``."""
        while (source := self.topic_source(topic)) is not None:
            if source == target_alias:
                return True
            upstream = self.upstream_topic(topic)
            if upstream is None or upstream == topic:
                return False
            topic = upstream
        return False

    def checkpoints_topic(self) -> str:
        """The checkpoints topic this flow writes on its target."""
        return self.source_alias + self.checkpoints_suffix

    def offset_syncs_topic(self, target_alias: str) -> str:
        """The offset-syncs topic this flow writes on its source."""
        return "mm2-offset-syncs" + self.separator + target_alias + self.internal_suffix

    def status_topic(self) -> str:
        """The topic on the target where mmplan daemons record this flow's state (started, healthy, stopped)."""
        return "mm2-mmplan-status" + self.separator + self.source_alias + self.internal_suffix

    def positions_topic(self) -> str:
        """The topic on the target holding an exactly-once flow's source positions, written in its transactions."""
        return "mm2-mmplan-offsets" + self.separator + self.source_alias + self.internal_suffix


@dataclass(frozen=True)
class Hop:
    """One enabled flow as the analysis sees it; its filter patterns are known to compile."""

    source: str
    target: str
    policy: ReplicationPolicy
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    flow_index: int

    @cached_property
    def _filters(self) -> tuple[list[re.Pattern[str]], list[re.Pattern[str]]]:
        return [re.compile(p) for p in self.include], [re.compile(p) for p in self.exclude]

    def filter_accepts(self, topic: str) -> bool:
        """The topic filter: some include pattern and no exclude pattern matches the whole name."""
        include, exclude = self._filters
        return any(p.fullmatch(topic) for p in include) and not any(p.fullmatch(topic) for p in exclude)

    def replicates(self, topic: str) -> bool:
        """``shouldReplicateTopic``: (filter accepts or heartbeats topic) and not internal and not a cycle."""
        policy = self.policy
        return ((self.filter_accepts(topic) or policy.is_heartbeats_topic(topic))
                and not policy.is_internal_topic(topic) and not policy.is_cycle(topic, self.target))
