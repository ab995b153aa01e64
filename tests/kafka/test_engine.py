"""The replication engine (`FlowRunner`) on real sandbox clusters.

Each test gives the shared pair aliases of its own (`e<id>` -> `w<id>`), so its remote topics, its group
`e<id>->w<id>` and its offset-syncs topic `mm2-offset-syncs.w<id>.internal` are its alone. The remote topics are
created by the plan/apply code, as `mmplan run` does before it replicates.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from isolated import pair_topology
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition

from mmplan.apply.workflow import apply_plan, plan_topology
from mmplan.daemon.flow import FlowRunner
from mmplan.daemon.metrics import Metrics
from mmplan.daemon.mm2_format import OffsetSync
from mmplan.graph.compile import compile_topology
from mmplan.topology.loader import load_topology

pytestmark = pytest.mark.kafka

HERE = Path(__file__).parent
# The test producer compresses with kafka-python, which needs lz4, zstandard and python-snappy for lz4, zstd and
# snappy (test dependencies still to be added); the engine forwards compressed batches without decompressing them.
CODECS = ["gzip", "lz4", "zstd", "snappy"]


class Case:
    """One test's flow over the shared pair."""

    def __init__(self, tmp_path: Path, kafka_pair, clients):
        self.id = uuid.uuid4().hex[:6]
        self.src, self.dst = f"e{self.id}", f"w{self.id}"
        self.prefix = f"p{self.id}"
        self.east_config = kafka_pair.kafka_config("us-east")
        self.west_config = kafka_pair.kafka_config("us-west")
        self.east = clients.admin(self.east_config)
        self.clients = clients
        self.file = tmp_path / "topology.yaml"
        self.file.write_text(pair_topology(kafka_pair, self.id, flow_extra="    refresh_topics: {interval: 5s}\n"))
        self.flow_name = f"{self.src}->{self.dst}"
        self.syncs_topic = f"mm2-offset-syncs.{self.dst}.internal"
        self.threads: list[tuple[threading.Thread, threading.Event, FlowRunner]] = []

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def remote(self, name: str) -> str:
        return f"{self.src}.{self.prefix}.{name}"

    def create(self, name: str, partitions: int = 1, **configs: str) -> str:
        self.east.create_topics([NewTopic(self.topic(name), partitions, 1, topic_configs=configs)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = self.east.describe_topics([self.topic(name)])
            if found and len(found[0]["partitions"]) == partitions and not found[0]["error_code"]:
                return self.topic(name)
            time.sleep(0.1)
        return self.topic(name)

    def apply(self) -> None:
        loaded = load_topology(self.file)
        live = plan_topology(loaded)
        assert not live.plan.has_errors, live.plan.problems
        outcomes = apply_plan(live.plan, loaded.topology)
        assert all(o.error is None for o in outcomes), outcomes

    def runner(self, metrics: Metrics | None = None) -> FlowRunner:
        topology = load_topology(self.file).topology
        [flow] = compile_topology(topology).flows
        return FlowRunner(flow, topology, metrics=metrics)

    def start(self, topics: list[str], metrics: Metrics | None = None) -> FlowRunner:
        runner = self.runner(metrics)
        runner.set_topics(topics)
        stop = threading.Event()
        thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
        thread.start()
        self.threads.append((thread, stop, runner))
        return runner

    def stop_all(self, within: float = 20.0) -> float:
        began = time.monotonic()
        for _, stop, _ in self.threads:
            stop.set()
        for thread, _, _ in self.threads:
            thread.join(within)
            assert not thread.is_alive(), "the runner did not return"
        self.threads.clear()
        return time.monotonic() - began

    def producer(self, **kwargs) -> KafkaProducer:
        options = {"linger_ms": 20, "batch_size": 64 * 1024, "acks": "all"} | kwargs
        return self.clients.producer(self.east_config, **options)


# Recent enough that retention (7 days by default) never deletes the records mid-test: with 2023 timestamps the
# brokers' retention check removed whole segments between the write and the read, at random.
BASE_TIMESTAMP = int(time.time() * 1000) - 3_600_000


def produce(producer: KafkaProducer, topic: str, count: int, partitions: int, size: int = 100, start: int = 0,
            headers: bool = True) -> None:
    pad = b"x" * max(0, size - 20)
    for i in range(start, start + count):
        producer.send(topic, key=b"k%d" % i, value=b"v%d-" % i + pad, partition=i % partitions,
                      timestamp_ms=BASE_TIMESTAMP + i,
                      headers=[("n", b"%d" % i), ("h2", b"")] if headers and i % 3 == 0 else [])
    producer.flush()


def read_all(config: dict, topic: str, partitions: int, expect: int | None = None, timeout: float = 60.0,
             committed: bool = True) -> dict[int, list[tuple]]:
    """Every record of `topic` per partition: (offset, key, value, headers, timestamp)."""
    consumer = KafkaConsumer(**config, enable_auto_commit=False, auto_offset_reset="earliest",
                             isolation_level="read_committed" if committed else "read_uncommitted",
                             fetch_max_bytes=16 << 20, max_partition_fetch_bytes=4 << 20)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: dict[int, list[tuple]] = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + timeout
        ends = consumer.end_offsets(tps)
        while time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=300, max_records=100000)
            for tp, records in polled.items():
                out[tp.partition] += [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in records]
            if expect is not None:
                if sum(map(len, out.values())) >= expect:
                    break
            elif not polled and all(consumer.position(tp) >= ends[tp] for tp in tps):
                break
        return out
    finally:
        consumer.close()


def wait_count(config: dict, topic: str, partitions: int, expect: int, timeout: float = 60.0) -> int:
    """Wait until the target's end offsets add up to `expect` (records only land once each, offsets from 0)."""
    consumer = KafkaConsumer(**config)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        deadline = time.monotonic() + timeout
        total = -1
        while time.monotonic() < deadline:
            total = sum(consumer.end_offsets(tps).values())
            if total >= expect:
                return total
            time.sleep(0.2)
        return total
    finally:
        consumer.close()


def wait_group(case: Case, topic: str, partitions: int, timeout: float = 60.0) -> bool:
    """Wait until the flow's group has committed the source's end offsets of `topic`."""
    consumer = KafkaConsumer(**case.east_config)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        consumer.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        offsets = case.east.list_group_offsets(case.flow_name).get(case.flow_name, {})
        if all(offsets.get(tp) is not None and offsets[tp].offset >= end for tp, end in ends.items()):
            return True
        time.sleep(0.3)
    return False


def replicated_count(metrics: Metrics, flow: str, topic: str) -> float:
    return metrics.registry.get_sample_value("mmplan_replicated_records_total", {"flow": flow, "topic": topic}) or 0


def is_subsequence(items: list, within: list) -> bool:
    rest = iter(within)
    return all(any(x == y for y in rest) for x in items)


def payload(records: dict[int, list[tuple]]) -> dict[int, list[tuple]]:
    """Records without their offsets."""
    return {p: [r[1:] for r in rs] for p, rs in records.items()}


@pytest.fixture
def case(tmp_path, kafka_pair, clients):
    c = Case(tmp_path, kafka_pair, clients)
    yield c
    c.stop_all()


def test_plain_topic_identical_with_syncs_and_group_offsets(case):
    topic = case.create("plain", 4)
    case.apply()
    produce(case.producer(), topic, 4000, 4, size=200)
    metrics = Metrics()
    runner = case.start([topic], metrics)
    source = read_all(case.east_config, topic, 4)
    assert sum(map(len, source.values())) == 4000
    assert wait_count(case.west_config, case.remote("plain"), 4, 4000) == 4000
    target = read_all(case.west_config, case.remote("plain"), 4, expect=4000)
    assert payload(target) == payload(source)
    assert runner.state == "running" and runner.error is None
    took = case.stop_all()
    assert took < 10
    assert runner.state == "stopped"

    # the group shows the position: everything
    admin = case.east
    offsets = admin.list_group_offsets(case.flow_name)[case.flow_name]
    assert {tp.partition: m.offset for tp, m in offsets.items() if tp.topic == topic} == {
        p: len(source[p]) for p in range(4)}

    # offset syncs decode as MirrorMaker 2's and map every batch's last record exactly
    syncs = read_all(case.east_config, case.syncs_topic, 1)[0]
    decoded = [OffsetSync.decode(r[1], r[2]) for r in syncs]
    assert decoded and all(s.topic == topic for s in decoded)
    for s in decoded:
        assert source[s.partition][s.upstream_offset][1:] == target[s.partition][s.downstream_offset][1:]
    for p in range(4):
        ends = [s.upstream_offset for s in decoded if s.partition == p]
        assert ends == sorted(ends) and ends[-1] == len(source[p]) - 1

    # metrics
    text = metrics.registry.get_sample_value("mmplan_replicated_records_total", {"flow": case.flow_name,
                                                                                 "topic": topic})
    assert text == 4000


@pytest.mark.parametrize("codec", CODECS)
def test_compressed_topics(case, codec):
    topic = case.create(f"c-{codec}", 2)
    case.apply()
    produce(case.producer(compression_type=codec), topic, 3000, 2)
    case.start([topic])
    source = read_all(case.east_config, topic, 2)
    assert wait_count(case.west_config, case.remote(f"c-{codec}"), 2, 3000) == 3000
    assert payload(read_all(case.west_config, case.remote(f"c-{codec}"), 2, expect=3000)) == payload(source)


def test_transactions_only_committed_records_arrive(case):
    topic = case.create("txn", 2)
    case.apply()
    producer = case.producer(transactional_id=f"tx-{case.id}", linger_ms=5)
    producer.init_transactions()
    expected = 0
    for round_ in range(6):
        producer.begin_transaction()
        produce_in_txn(producer, topic, round_)
        if round_ % 2:
            producer.abort_transaction()
        else:
            producer.commit_transaction()
            expected += 200
    plain = case.producer()
    produce(plain, topic, 100, 2, start=10_000)
    expected += 100
    runner = case.start([topic])
    source = read_all(case.east_config, topic, 2)
    assert sum(map(len, source.values())) == expected
    target = read_all(case.west_config, case.remote("txn"), 2, expect=expected, timeout=30)
    assert payload(target) == payload(source)
    assert all(b"aborted" not in r[2] for rs in target.values() for r in rs)
    assert runner.error is None


def produce_in_txn(producer: KafkaProducer, topic: str, round_: int) -> None:
    tag = b"aborted" if round_ % 2 else b"committed"
    for i in range(200):
        producer.send(topic, key=b"t%d-%d" % (round_, i), value=tag + b"-%d" % i, partition=i % 2)
    producer.flush()


def test_compacted_topic(case, monkeypatch):
    topic = case.create("compact", 1, **{"cleanup.policy": "compact", "segment.ms": "100",
                                         "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "100"})
    case.apply()
    producer = case.producer(linger_ms=100)
    produced = []  # each round one batch, overwriting some keys of the earlier ones: gaps inside batches
    for round_ in range(5):
        for i in range(0, 50, round_ + 1):
            producer.send(topic, key=b"k%d" % i, value=b"r%d-%d" % (round_, i), partition=0)
            produced.append((b"k%d" % i, b"r%d-%d" % (round_, i)))
        producer.flush()
        time.sleep(0.3)
    # wait until the cleaner made gaps in the log (the record count falls below the end offset)
    deadline = time.monotonic() + 60
    source = read_all(case.east_config, topic, 1)
    while len(source[0]) >= len(produced) and time.monotonic() < deadline:
        time.sleep(1)
        source = read_all(case.east_config, topic, 1)
    assert len(source[0]) < len(produced), "the log cleaner did not run"
    from mmplan.daemon import batches

    rewrites = []
    rewrite = batches.rewrite
    monkeypatch.setattr(batches, "rewrite", lambda *a: rewrites.append(1) or rewrite(*a))
    case.start([topic])
    assert wait_group(case, topic, 1)
    # the cleaner may go on removing records while they are replicated: the target holds the log as it was
    # fetched, so every record still in the source is on the target, in order, and nothing else is
    source = [(r[1], r[2], tuple(r[3]), r[4]) for r in read_all(case.east_config, topic, 1)[0]]
    target = read_all(case.west_config, case.remote("compact"), 1)[0]
    assert [r[0] for r in target] == list(range(len(target)))  # renumbered without gaps
    got = [(r[1], r[2], tuple(r[3]), r[4]) for r in target]
    assert is_subsequence(source, got)
    assert is_subsequence([g[:2] for g in got], produced)
    assert {k: v for k, v, *_ in got} == {k: v for k, v, *_ in source}  # the latest value of every key
    assert rewrites, "no batch with gaps was renumbered"


def test_two_runners_share_a_flow_and_one_dying_is_absorbed(case):
    topic = case.create("shared", 4)
    case.apply()
    producer = case.producer()
    produce(producer, topic, 2000, 4)
    metrics = [Metrics(), Metrics()]
    first = case.start([topic], metrics[0])
    second = case.start([topic], metrics[1])
    assert wait_count(case.west_config, case.remote("shared"), 4, 2000) == 2000
    time.sleep(3)  # both members settle
    before = [replicated_count(m, case.flow_name, topic) for m in metrics]
    produce(producer, topic, 2000, 4, start=2000)
    assert wait_count(case.west_config, case.remote("shared"), 4, 4000) >= 4000
    # the partitions are split between the two, and nothing is written twice in steady state
    time.sleep(2)
    after = [replicated_count(m, case.flow_name, topic) for m in metrics]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    target = read_all(case.west_config, case.remote("shared"), 4, expect=4000)
    assert sum(map(len, target.values())) == 4000
    # stop one; the other takes its partitions
    thread, stop, runner = case.threads.pop(0)
    stop.set()
    thread.join(20)
    produce(producer, topic, 2000, 4, start=4000)
    assert wait_count(case.west_config, case.remote("shared"), 4, 6000, timeout=60) >= 6000
    source = read_all(case.east_config, topic, 4)
    target = read_all(case.west_config, case.remote("shared"), 4, expect=6000)
    assert payload(target) == payload(source)
    assert first.state == "stopped" and second.state == "running"


def test_new_partitions_and_topics_are_picked_up(case):
    topic = case.create("grow", 1)
    case.apply()
    producer = case.producer()
    produce(producer, topic, 100, 1)
    runner = case.start([topic])
    assert wait_count(case.west_config, case.remote("grow"), 1, 100) == 100
    case.east.create_partitions({topic: 2})
    other = case.create("later", 1)
    case.apply()
    runner.set_topics([topic, other])
    time.sleep(1)
    produce(case.producer(), topic, 100, 2, start=100)
    produce(case.producer(), other, 50, 1)
    assert wait_count(case.west_config, case.remote("grow"), 2, 200, timeout=60) == 200
    assert wait_count(case.west_config, case.remote("later"), 1, 50) == 50


def test_missing_remote_topic_fails_the_flow(case, monkeypatch):
    import mmplan.daemon.flow as flow_module

    monkeypatch.setattr(flow_module, "REMOTE_TOPIC_GRACE", 2.0)
    topic = case.create("noremote", 1)
    produce(case.producer(), topic, 10, 1)
    runner = case.start([topic])
    thread = case.threads[0][0]
    thread.join(40)
    assert not thread.is_alive()
    assert runner.state == "failed" and case.remote("noremote") in runner.error


def test_kill_9_and_restart_lose_nothing(case, tmp_path):
    partitions, total = 4, 120_000
    topic = case.create("kill", partitions)
    case.apply()
    producer = case.producer(batch_size=16 * 1024, linger_ms=5)
    log = tmp_path / "engine.log"

    def spawn() -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=str(HERE.parent.parent))
        with open(log, "ab") as err:
            return subprocess.Popen([sys.executable, str(HERE / "engine_proc.py"), str(case.file), topic],
                                    env=env, stdout=subprocess.DEVNULL, stderr=err)

    def replicated() -> int:
        return wait_count(case.west_config, case.remote("kill"), partitions, 1, timeout=0.1)

    # records keep coming while the engine is killed twice mid-stream
    feeder = threading.Thread(target=produce, args=(producer, topic, total, partitions),
                              kwargs={"size": 100, "headers": False}, daemon=True)
    feeder.start()
    proc = spawn()
    try:
        for mark in (total // 6, total // 2):
            deadline = time.monotonic() + 60
            while replicated() < mark:
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = spawn()
        feeder.join(120)
        assert wait_group(case, topic, partitions, timeout=90), log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_count(case.east_config, topic, partitions, total, timeout=1) == total
    source = read_all(case.east_config, topic, partitions, expect=total)
    target = read_all(case.west_config, case.remote("kill"), partitions)
    assert sum(map(len, source.values())) == total
    for p in range(partitions):
        want = [(r[1], r[2], tuple(r[3]), r[4]) for r in source[p]]
        got = [(r[1], r[2], tuple(r[3]), r[4]) for r in target[p]]
        # at-least-once: every source record is on the target, in order; a crash may repeat a stretch
        assert list(dict.fromkeys(got)) == want, p


def test_target_broker_restart_mid_stream_is_survived(tmp_path, kafka_pair, fresh_cluster, clients):
    """The flow writes to a cluster of its own, which is stopped and started again while records flow."""
    from mmplan import sandbox

    case = Case(tmp_path, kafka_pair, clients)
    text = case.file.read_text().replace(kafka_pair.cluster("us-west").bootstrap_servers,
                                         fresh_cluster.cluster("fresh").bootstrap_servers)
    case.file.write_text(text)
    case.west_config = fresh_cluster.kafka_config("fresh")
    partitions, total = 2, 30_000
    topic = case.create("restart", partitions)
    case.apply()
    producer = case.producer()
    feeder = threading.Thread(target=produce, args=(producer, topic, total, partitions), daemon=True)
    feeder.start()
    runner = case.start([topic])
    try:
        deadline = time.monotonic() + 60
        while wait_count(case.west_config, case.remote("restart"), partitions, 1, timeout=0.1) < total // 5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sandbox.down(fresh_cluster.dir, keep=True)
        sandbox.up(fresh_cluster.dir)
        feeder.join(60)
        assert wait_group(case, topic, partitions, timeout=90), runner.error
        assert runner.state == "running"
    finally:
        case.stop_all()
    source = read_all(case.east_config, topic, partitions, expect=total)
    target = read_all(case.west_config, case.remote("restart"), partitions)
    for p in range(partitions):
        want = [(r[1], r[2], tuple(r[3]), r[4]) for r in source[p]]
        got = [(r[1], r[2], tuple(r[3]), r[4]) for r in target[p]]
        assert list(dict.fromkeys(got)) == want, p


def test_sasl_scram_cluster(tmp_path, kafka_sasl, clients, monkeypatch):
    """Over SASL/SCRAM, with the password a ${VAR}: a flow between two aliases of one secure cluster."""
    import yaml

    from mmplan.sandbox import PASSWORD_VAR

    monkeypatch.setenv(PASSWORD_VAR, kafka_sasl.password)
    secure = yaml.safe_load((kafka_sasl.dir / "topology.yaml").read_text())["clusters"]["secure"]
    case = Case.__new__(Case)
    case.id = uuid.uuid4().hex[:6]
    case.src, case.dst, case.prefix = f"e{case.id}", f"w{case.id}", f"p{case.id}"
    case.east_config = case.west_config = kafka_sasl.kafka_config("secure")
    case.east = clients.admin(case.east_config)
    case.clients = clients
    case.file = tmp_path / "topology.yaml"
    case.file.write_text(yaml.safe_dump({
        "version": 1, "defaults": {"replication_factor": 1},
        "clusters": {case.src: secure, case.dst: secure},
        "flows": [{"source": case.src, "target": case.dst, "topics": {"include": [case.prefix + r"\..*"]},
                   "heartbeats": {"topic": f"hb-{case.id}"}}]}))
    case.flow_name = f"{case.src}->{case.dst}"
    case.syncs_topic = f"mm2-offset-syncs.{case.dst}.internal"
    case.threads = []
    topic = case.create("secure", 2)
    # plan/apply refuse two aliases of one cluster; the engine does not care: make its topics by hand
    case.east.create_topics([NewTopic(case.remote("secure"), 2, 1), NewTopic(case.syncs_topic, 1, 1)])
    produce(case.producer(), topic, 1000, 2)
    runner = case.start([topic])
    try:
        assert wait_group(case, topic, 2, timeout=60), runner.error
    finally:
        case.stop_all()
    source = read_all(case.east_config, topic, 2)
    assert payload(read_all(case.west_config, case.remote("secure"), 2, expect=1000)) == payload(source)


def test_stop_mid_stream_drains_commits_and_returns_promptly(case):
    partitions, total = 4, 40_000
    topic = case.create("stop", partitions)
    case.apply()
    produce(case.producer(), topic, total, partitions, headers=False)
    runner = case.start([topic])
    deadline = time.monotonic() + 60
    while wait_count(case.west_config, case.remote("stop"), partitions, 1, timeout=0.1) < total // 10:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert case.stop_all(within=20) < 10
    assert runner.state == "stopped"
    assert sum(m.offset for m in case.east.list_group_offsets(case.flow_name)[case.flow_name].values()) > 0
    # the committed position never runs ahead of what the target holds
    committed = case.east.list_group_offsets(case.flow_name)[case.flow_name]
    source = read_all(case.east_config, topic, partitions, expect=total)
    target = read_all(case.west_config, case.remote("stop"), partitions)
    for p in range(partitions):
        meta = committed.get(TopicPartition(topic, p))
        position = meta.offset if meta is not None else 0
        assert 0 <= position <= len(source[p])
        assert payload({0: target[p]})[0][:position] == payload({0: source[p]})[0][:position]


def test_unreachable_target_makes_the_flow_retry(case):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    topic = case.create("unreachable", 1)
    topology = load_topology(case.file).topology
    clusters = dict(topology.clusters)
    clusters[case.dst] = clusters[case.dst].model_copy(update={"bootstrap_servers": [f"127.0.0.1:{port}"]})
    topology = topology.model_copy(update={"clusters": clusters})
    [flow] = compile_topology(topology).flows
    runner = FlowRunner(flow, topology)
    runner.set_topics([topic])
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while runner.state != "retrying":
        assert time.monotonic() < deadline and thread.is_alive(), runner.state
        time.sleep(0.1)
    assert runner.error
    stop.set()
    thread.join(20)
    assert not thread.is_alive() and runner.state == "stopped"
