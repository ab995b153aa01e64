"""Exactly-once mode of the engine on real sandbox clusters: kill -9 mid-stream, scale-out, fencing a zombie,
and `mmplan run --exactly-once` on a flow whose topology says otherwise.

Each test has aliases of its own on the shared pair (see isolated.py), so its group, remote topics and positions
topic `mm2-mmplan-offsets.e<id>.internal` are its alone. On the target every transaction ends with a marker, so
end offsets overcount: completion is judged by the flow's group (committed after every transaction) and by the
positions topic, and contents by read_committed reads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer
from test_engine import BASE_TIMESTAMP, Case, produce, read_all, wait_count, wait_group
from test_run import MMPLAN

from mmplan.daemon.mm2_format import OffsetSync

pytestmark = pytest.mark.kafka

HERE = Path(__file__).parent


class EosCase(Case):
    def __init__(self, tmp_path, kafka_pair, clients, exactly_once: bool = True):
        super().__init__(tmp_path, kafka_pair, clients)
        if exactly_once:
            self.file.write_text(self.file.read_text() + "    exactly_once: true\n")
        self.positions_topic = f"mm2-mmplan-offsets.{self.src}.internal"
        self.log = tmp_path / "engine.log"

    def spawn(self, *topics: str) -> subprocess.Popen:
        """The flow in a process of its own (tests/kafka/engine_proc.py), its log appended to `self.log`."""
        env = dict(os.environ, PYTHONPATH=str(HERE.parent.parent))
        with open(self.log, "ab") as err:
            return subprocess.Popen([sys.executable, str(HERE / "engine_proc.py"), str(self.file), *topics],
                                    env=env, stdout=subprocess.DEVNULL, stderr=err)

    def log_tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def positions(self) -> dict[tuple[str, int], int]:
        """The last committed position of every source partition, from the positions topic on the target."""
        out = {}
        for _, key, value, *_ in read_all(self.west_config, self.positions_topic, 1, timeout=20)[0]:
            topic, partition = json.loads(key)
            out[(topic, partition)] = json.loads(value)["offset"]
        return out


@pytest.fixture
def case(tmp_path, kafka_pair, clients):
    c = EosCase(tmp_path, kafka_pair, clients)
    yield c
    c.stop_all()


def records(config: dict, topic: str, partitions: int, **kwargs) -> dict[int, list[tuple]]:
    """read_committed content per partition: (key, value, headers, timestamp), in order."""
    return {p: [(r[1], r[2], tuple(r[3]), r[4]) for r in rs]
            for p, rs in read_all(config, topic, partitions, **kwargs).items()}


def end_offsets(case: Case, topic: str, partitions: int, config: dict | None = None) -> dict[int, int]:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(**(config or case.east_config))
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: o for tp, o in ends.items()}
    finally:
        consumer.close()


def produce_transactions(producer: KafkaProducer, topic: str, rounds: int, per_round: int, partitions: int) -> int:
    """Transactions of `per_round` records over the partitions, every third one aborted; the committed count."""
    producer.init_transactions()
    committed = 0
    for round_ in range(rounds):
        producer.begin_transaction()
        aborted = round_ % 3 == 1
        for i in range(per_round):
            producer.send(topic, key=b"t%d-%d" % (round_, i), value=(b"aborted" if aborted else b"ok") + b"-%d" % i,
                          partition=i % partitions, timestamp_ms=BASE_TIMESTAMP + i,
                          headers=[("r", b"%d" % round_)])
        producer.flush()
        if aborted:
            producer.abort_transaction()
        else:
            producer.commit_transaction()
            committed += per_round
    return committed


def assert_identical(case: Case, topic: str, remote: str, partitions: int, expect: int) -> None:
    source = records(case.east_config, topic, partitions, expect=expect)
    target = records(case.west_config, remote, partitions, expect=expect, timeout=60)
    assert sum(map(len, source.values())) == expect
    for p in range(partitions):
        assert len(target[p]) == len(source[p]), (p, len(target[p]), len(source[p]))
        assert target[p] == source[p], p


def test_kill_9_repeatedly_neither_loses_nor_duplicates(case):
    plain_partitions, plain_total = 4, 100_000
    txn_partitions = 2
    plain = case.create("plain", plain_partitions)
    txn = case.create("txn", txn_partitions)
    case.apply()
    feeder = threading.Thread(target=produce, args=(case.producer(batch_size=16 * 1024, linger_ms=5), plain,
                                                    plain_total, plain_partitions),
                              kwargs={"size": 120}, daemon=True)
    committed = []
    txn_feeder = threading.Thread(
        target=lambda: committed.append(produce_transactions(
            case.producer(transactional_id=f"tx-{case.id}", linger_ms=5), txn, 30, 400, txn_partitions)),
        daemon=True)
    feeder.start()
    txn_feeder.start()

    def progress() -> int:  # records and markers on the target: only a progress measure
        return wait_count(case.west_config, case.remote("plain"), plain_partitions, 1, timeout=0.1)

    proc = case.spawn(plain, txn)
    kills = 0
    try:
        for mark in (plain_total // 8, plain_total // 3, plain_total // 2, 3 * plain_total // 4):
            deadline = time.monotonic() + 90
            while progress() < mark:
                assert time.monotonic() < deadline and proc.poll() is None, case.log_tail()
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
            proc = case.spawn(plain, txn)
        feeder.join(120)
        txn_feeder.join(120)
        assert committed, "the transactional producer did not finish"
        assert wait_group(case, plain, plain_partitions, timeout=120), case.log_tail()
        assert wait_group(case, txn, txn_partitions, timeout=60), case.log_tail()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, case.log_tail()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert kills == 4
    assert_identical(case, plain, case.remote("plain"), plain_partitions, plain_total)
    assert_identical(case, txn, case.remote("txn"), txn_partitions, committed[0])
    target = records(case.west_config, case.remote("txn"), txn_partitions)
    assert all(not r[1].startswith(b"aborted") for rs in target.values() for r in rs)
    # the positions topic holds every partition's position: the source's end (a transactional source may end
    # with a commit marker, which needs no transaction of its own)
    positions = case.positions()
    ends = end_offsets(case, plain, plain_partitions)
    assert {p: positions.get((plain, p)) for p in range(plain_partitions)} == ends
    for p, end in end_offsets(case, txn, txn_partitions).items():
        assert end - 1 <= positions[(txn, p)] <= end


def test_scale_out_kill_and_zombie_are_fenced_without_duplicates(case):
    partitions, step = 4, 8_000
    topic = case.create("shared", partitions)
    case.apply()
    producer = case.producer(batch_size=16 * 1024, linger_ms=5)
    produce(producer, topic, step, partitions)
    first = case.spawn(topic)
    second = None
    try:
        assert wait_group(case, topic, partitions, timeout=60), case.log_tail()
        second = case.spawn(topic)  # scale-out while the first runs and records keep coming
        produce(producer, topic, step, partitions, start=step)
        time.sleep(2)
        produce(producer, topic, step, partitions, start=2 * step)
        assert wait_group(case, topic, partitions, timeout=90), case.log_tail()
        assert_identical(case, topic, case.remote("shared"), partitions, 3 * step)

        # a zombie: the first stops (SIGSTOP) mid-stream, the second takes its partitions and fences it; woken
        # up, its open transaction is refused and it drops those partitions
        feeder = threading.Thread(target=produce, args=(producer, topic, 3 * step, partitions),
                                  kwargs={"start": 3 * step}, daemon=True)
        feeder.start()
        time.sleep(0.5)
        first.send_signal(signal.SIGSTOP)
        feeder.join(60)
        assert wait_group(case, topic, partitions, timeout=90), case.log_tail()  # the second alone got there
        first.send_signal(signal.SIGCONT)
        produce(producer, topic, step, partitions, start=6 * step)
        assert wait_group(case, topic, partitions, timeout=90), case.log_tail()
        time.sleep(2)
        assert_identical(case, topic, case.remote("shared"), partitions, 7 * step)

        # kill -9 one of them mid-stream: the other takes over
        feeder = threading.Thread(target=produce, args=(producer, topic, 3 * step, partitions),
                                  kwargs={"start": 7 * step}, daemon=True)
        feeder.start()
        time.sleep(0.5)
        second.send_signal(signal.SIGKILL)
        second.wait(10)
        feeder.join(60)
        assert wait_group(case, topic, partitions, timeout=90), case.log_tail()
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0, case.log_tail()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
    assert_identical(case, topic, case.remote("shared"), partitions, 10 * step)
    ends = end_offsets(case, topic, partitions)
    positions = case.positions()
    assert {p: positions.get((topic, p)) for p in range(partitions)} == ends
    assert "fenced" in case.log.read_text(), case.log_tail()


def test_run_exactly_once_forces_the_mode(tmp_path, kafka_pair, clients):
    case = EosCase(tmp_path, kafka_pair, clients, exactly_once=False)
    assert "exactly_once" not in case.file.read_text()
    partitions = 2
    topic = case.create("forced", partitions)
    produce(case.producer(), topic, 5000, partitions)
    log = tmp_path / "run.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([MMPLAN, "run", str(case.file), "--exactly-once", "--log-format", "json",
                                 "--no-lease"],  # the only daemon: it applies without an election
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "NO_COLOR": "1"})
    try:
        assert wait_group(case, topic, partitions, timeout=90), log.read_text()[-4000:]
        produce(case.producer(), topic, 5000, partitions, start=5000)
        assert wait_group(case, topic, partitions, timeout=60), log.read_text()[-4000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_identical(case, topic, case.remote("forced"), partitions, 10_000)
    # transactional: the positions topic holds the positions, and markers follow the records on the target
    ends = end_offsets(case, topic, partitions)
    positions = case.positions()
    assert {p: positions.get((topic, p)) for p in range(partitions)} == ends
    target_ends = end_offsets(case, case.remote("forced"), partitions, config=case.west_config)
    assert all(target_ends[p] > ends[p] for p in range(partitions))
    # offset syncs for the first and the last record of every forwarded batch, each mapping identical records
    source = read_all(case.east_config, topic, partitions)
    target = read_all(case.west_config, case.remote("forced"), partitions)
    at = {p: {r[0]: r[1:] for r in target[p]} for p in range(partitions)}
    syncs = [OffsetSync.decode(r[1], r[2]) for r in read_all(case.east_config, case.syncs_topic, 1)[0]]
    syncs = [s for s in syncs if s.topic == topic]  # not the heartbeats topic's
    assert {s.partition for s in syncs} == set(range(partitions))
    for s in syncs:
        assert source[s.partition][s.upstream_offset][1:] == at[s.partition][s.downstream_offset]
    for p in range(partitions):
        ups = [s.upstream_offset for s in syncs if s.partition == p]
        assert ups[0] == 0 and ups[-1] == len(source[p]) - 1 and ups == sorted(ups)
        # a sync on each side of every transaction marker: the record after a marker is a batch's first
        after_marker = [o for o in at[p] if o > 0 and o - 1 not in at[p]]
        assert after_marker and set(after_marker) <= {s.downstream_offset for s in syncs if s.partition == p}


def test_target_broker_restart_mid_stream(tmp_path, kafka_pair, fresh_cluster, clients):
    """The target (a cluster of its own) stops and starts again mid-stream: coordinator and produce errors start
    partitions over from their committed positions, and nothing is lost or repeated."""
    from mmplan import sandbox

    case = EosCase(tmp_path, kafka_pair, clients)
    case.file.write_text(case.file.read_text().replace(kafka_pair.cluster("us-west").bootstrap_servers,
                                                       fresh_cluster.cluster("fresh").bootstrap_servers))
    case.west_config = fresh_cluster.kafka_config("fresh")
    partitions, total = 2, 30_000
    topic = case.create("restart", partitions)
    case.apply()
    feeder = threading.Thread(target=produce, args=(case.producer(), topic, total, partitions), daemon=True)
    feeder.start()
    runner = case.start([topic])
    try:
        deadline = time.monotonic() + 90
        while wait_count(case.west_config, case.remote("restart"), partitions, 1, timeout=0.1) < total // 5:
            assert time.monotonic() < deadline, (runner.state, runner.error)
            time.sleep(0.05)
        sandbox.down(fresh_cluster.dir, keep=True)
        sandbox.up(fresh_cluster.dir)
        feeder.join(60)
        assert wait_group(case, topic, partitions, timeout=120), runner.error
        assert runner.state == "running"
    finally:
        case.stop_all()
    assert_identical(case, topic, case.remote("restart"), partitions, total)
