"""Reading and writing small amounts of records: internal topics (offset syncs, checkpoints, heartbeats, status)
and the probe records of a drill. The replication hot path does not use this module (see `mmplan.daemon.wire`)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import kafka.errors as Errors
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from mmplan.errors import MmplanError
from mmplan.kafka.config import client_config
from mmplan.kafka.errors import request_failure
from mmplan.topology.models import Cluster


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: int  # ms since the epoch
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def consumer(alias: str, cluster: Cluster, timeout: float = 10.0, **settings) -> KafkaConsumer:
    """A KafkaConsumer of cluster `alias` (read_committed, no auto commit unless `settings` say otherwise)."""
    config = client_config(alias, cluster, timeout)
    config["client_id"] = f"{config['client_id']}-{alias}-{uuid.uuid4().hex[:6]}"
    config.update({"isolation_level": "read_committed", "enable_auto_commit": False, **settings})
    try:
        return KafkaConsumer(**config)
    except Errors.KafkaError as e:
        raise request_failure(alias, "connect a consumer", e) from None


def producer(alias: str, cluster: Cluster, timeout: float = 10.0, **settings) -> KafkaProducer:
    """A KafkaProducer of cluster `alias` (acks=all unless `settings` say otherwise)."""
    config = client_config(alias, cluster, timeout)
    config["client_id"] = f"{config['client_id']}-{alias}-{uuid.uuid4().hex[:6]}"
    config.update({"acks": "all", **settings})
    try:
        return KafkaProducer(**config)
    except Errors.KafkaError as e:
        raise request_failure(alias, "connect a producer", e) from None


def read_topic(alias: str, cluster: Cluster, topic: str, timeout: float = 10.0,
               start: dict[int, int] | None = None) -> list[Record]:
    """Every committed record of `topic` from its start (or from `start`: partition -> offset) to its end now.

    A topic that does not exist gives []. Raises MmplanError when the end is not reached within `timeout`.
    """
    c = consumer(alias, cluster, timeout)
    try:
        partitions = c.partitions_for_topic(topic)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        c.assign(tps)
        ends = c.end_offsets(tps, timeout_ms=int(timeout * 1000))
        for tp in tps:
            if start and tp.partition in start:
                c.seek(tp, start[tp.partition])
            else:
                c.seek_to_beginning(tp)
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        waiting = {tp for tp in tps if ends[tp] > 0}
        while waiting:
            waiting = {tp for tp in waiting if c.position(tp) < ends[tp]}
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise MmplanError(f"reading {topic} did not reach its end within {timeout:g}s",
                                  where=f"cluster {alias}", hint="the cluster may be overloaded; try --timeout")
            for tp, records in c.poll(timeout_ms=200).items():
                for r in records:
                    if r.offset < ends[tp]:
                        out.append(Record(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value,
                                          tuple(r.headers or ())))
        out.sort(key=lambda r: (r.partition, r.offset))
        return out
    except Errors.KafkaError as e:
        raise request_failure(alias, f"read topic {topic}", e) from None
    finally:
        c.close()
