"""Broker connections for the hot path, through kafka-python 3.0.12's network layer (`kafka.net`).

One `NetworkSelector` event loop, driven by the flow's own thread (no IO thread), carries the connections to the
source and the target cluster (one `KafkaConnectionManager` each, with SASL/TLS from `client_config`). Requests are
kafka-python's generated protocol classes: FetchRequest v4-12 (v13+ needs topic ids), ProduceRequest v3-9,
InitProducerIdRequest up to v4 (the other transaction requests are in `transactions`). `records` fields pass raw
batch bytes through untouched.

kafka.net is young internal API; everything the engine needs from it is in this module.
"""

from __future__ import annotations

import time

import kafka.errors as Errors
from kafka.future import Future
from kafka.net.inet import create_connection
from kafka.net.manager import KafkaConnectionManager
from kafka.net.selector import NetworkSelector
from kafka.net.transport import KafkaTCPTransport
from kafka.protocol.consumer import FetchRequest
from kafka.protocol.producer import InitProducerIdRequest, ProduceRequest
from kafka.structs import TopicPartition

from mmplan.kafka.config import client_config
from mmplan.topology.models import Cluster

READ_COMMITTED = 1
MAX_IN_FLIGHT = 5  # per connection; also the broker's idempotence window per partition
RECV_CHUNK = 1 << 20


class _WideReadTransport(KafkaTCPTransport):
    """Plaintext transport reading up to 1 MiB per recv() (kafka-python reads 4 KiB: 250 calls per MB fetched)."""

    def _sock_recv(self):
        chunks = []
        err = None
        while True:
            try:
                data = self._sock.recv(RECV_CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except Exception as e:  # noqa: BLE001 - as kafka-python does: the connection is closed
                err = Errors.KafkaConnectionError(e)
                break
            if not data:
                err = Errors.KafkaConnectionError("socket disconnected")
                break
            chunks.append(data)
            if len(data) < RECV_CHUNK:
                break
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), err


class _Manager(KafkaConnectionManager):
    async def _build_transport(self, node, timeout_at=None):
        if self.ssl_enabled:
            return await super()._build_transport(node, timeout_at=timeout_at)
        sock = await create_connection(self._net, node.host, node.port, self.config["socket_options"],
                                       proxy_url=self.config["proxy_url"], timeout_at=timeout_at)
        transport = _WideReadTransport(self._net, sock, host=node.host)
        try:
            await transport.handshake()
        except Exception as e:  # noqa: BLE001
            raise Errors.KafkaConnectionError(f"Handshake failed: {e}") from e
        return transport


class Loop:
    """The event loop shared by a flow's clusters; `poll` runs callbacks of finished requests."""

    def __init__(self) -> None:
        self.net = NetworkSelector(slow_task_threshold_secs=0)

    def poll(self, timeout_s: float) -> None:
        self.net.poll(timeout_ms=max(0.0, timeout_s) * 1000)

    def close(self) -> None:
        try:
            self.net.close()
        except Exception:  # noqa: BLE001 - closing is best-effort
            pass


class Link:
    """Connections to one cluster: metadata, leaders, and raw requests to a broker."""

    def __init__(self, loop: Loop, alias: str, cluster: Cluster, timeout: float = 10.0,
                 receive_max_bytes: int = 64 << 20, client_suffix: str = "",
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        config = client_config(alias, cluster, timeout)
        config["client_id"] = f"{config['client_id']}-{alias}{client_suffix}"
        config["receive_message_max_bytes"] = receive_max_bytes
        config["max_in_flight_requests_per_connection"] = max_in_flight
        config["request_timeout_ms"] = max(config["request_timeout_ms"], 35000)  # produce timeout 30 s + margin
        config["metadata_max_age_ms"] = 30000
        self.alias = alias
        self.loop = loop
        self.timeout = timeout
        self.manager = _Manager(loop.net, **config)
        self.manager.cluster.config["allow_auto_create_topics"] = False  # never create a topic by asking for it
        self.in_flight: dict[int, int] = {}
        self.max_in_flight = max_in_flight

    def bootstrap(self) -> None:
        """Connect and read metadata; raises a KafkaError (retriable or not) on failure."""
        self.manager.bootstrap(timeout_ms=self.timeout * 1000)
        auth = [e for e in self.manager._auth_failures.values() if e is not None]
        if auth:
            raise auth[0]

    @property
    def cluster(self):
        return self.manager.cluster

    def track(self, topics: set[str]) -> None:
        """Topics to keep metadata for."""
        if set(topics) != set(self.cluster._topics):
            self.cluster._topics = set(topics)
            self.cluster.request_update()

    def refresh(self) -> None:
        self.cluster.request_update()

    def refresh_now(self, timeout: float | None = None) -> None:
        """Block (driving the loop) until a fresh metadata response arrived."""
        future = self.cluster.request_update()
        deadline = time.monotonic() + (timeout or self.timeout)
        while not future.is_done and time.monotonic() < deadline:
            self.loop.poll(0.05)
        if future.failed():
            raise future.exception

    def leader(self, topic: str, partition: int) -> int | None:
        node = self.cluster.leader_for_partition(TopicPartition(topic, partition))
        return node if node is not None and node >= 0 else None

    def partitions(self, topic: str) -> set[int] | None:
        return self.cluster.partitions_for_topic(topic)

    def can_send(self, node: int) -> bool:
        if self.in_flight.get(node, 0) >= self.max_in_flight:
            return False
        try:
            conn = self.manager.get_connection(node)
        except Errors.KafkaError:
            return False
        return conn.connected and not conn.paused

    def connecting(self, node: int) -> None:
        try:
            self.manager.get_connection(node)
        except Errors.KafkaError:
            pass

    def send(self, node: int, request) -> Future:
        self.in_flight[node] = self.in_flight.get(node, 0) + 1
        future = self.manager.send(request, node_id=node)

        def done(_):
            self.in_flight[node] -= 1

        future.add_both(done)
        return future

    def any_node(self) -> int | None:
        return self.manager.least_loaded_node()

    def close(self) -> None:
        try:
            self.manager.close()
        except Exception:  # noqa: BLE001 - closing is best-effort
            pass


def fetch_request(partitions: dict[str, list[tuple[int, int]]], max_bytes: int, partition_max_bytes: int,
                  max_wait_ms: int = 500) -> FetchRequest:
    """A read_committed full fetch (no session) of {topic: [(partition, offset)]}."""
    P = FetchRequest.FetchTopic.FetchPartition
    topics = [FetchRequest.FetchTopic(topic=t, partitions=[
        P(partition=p, current_leader_epoch=-1, fetch_offset=o, last_fetched_epoch=-1, log_start_offset=-1,
          partition_max_bytes=partition_max_bytes) for p, o in parts]) for t, parts in partitions.items()]
    return FetchRequest(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=max_bytes,
                        isolation_level=READ_COMMITTED, session_id=0, session_epoch=-1, topics=topics,
                        forgotten_topics_data=[], rack_id="", min_version=4, max_version=12)


def produce_request(batches: dict[str, list[tuple[int, bytes | bytearray]]], acks: int = -1,
                    timeout_ms: int = 30000, transactional_id: str | None = None) -> ProduceRequest:
    """A produce of one batch per partition: {topic: [(partition, batch)]} (all of one producer id when
    `transactional_id` is set)."""
    T = ProduceRequest.TopicProduceData
    topic_data = [T(name=t, partition_data=[T.PartitionProduceData(index=p, records=data) for p, data in parts])
                  for t, parts in batches.items()]
    return ProduceRequest(transactional_id=transactional_id, acks=acks, timeout_ms=timeout_ms, topic_data=topic_data,
                          min_version=3, max_version=9)


def init_producer_id_request(transactional_id: str | None = None,
                             transaction_timeout_ms: int = 60000) -> InitProducerIdRequest:
    """An idempotent producer id, or (with `transactional_id`) the id's producer, fencing its previous epoch."""
    return InitProducerIdRequest(transactional_id=transactional_id, transaction_timeout_ms=transaction_timeout_ms,
                                 producer_id=-1, producer_epoch=-1, max_version=4)
