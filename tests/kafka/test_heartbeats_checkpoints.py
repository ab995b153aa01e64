"""Heartbeats, checkpoints, group offset sync and status records written by `mmplan run` on the sandbox pair.

Each test runs the real daemon as a process (`mmplan run`, SIGTERM to stop) on aliases of its own (`e<id>`,
`w<id>`, tests/kafka/isolated.py) with short intervals, and reads what it wrote with the client layer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from isolated import pair_topology
from kafka import KafkaConsumer, TopicPartition

from mmplan.daemon.mm2_format import Checkpoint, Heartbeat
from mmplan.daemon.status_record import StatusRecord
from mmplan.kafka.admin import Admin
from mmplan.kafka.records import producer, read_topic
from mmplan.state.snapshot import TopicState
from mmplan.topology.loader import load_topology

pytestmark = pytest.mark.kafka

MMPLAN = str(Path(sys.executable).with_name("mmplan"))
FAST = ("    checkpoints: {interval: 1s}\n"
        "    sync_group_offsets: {enabled: true, interval: 1s}\n")


def wait_until(predicate, timeout: float = 30.0, what: str = "condition", pause: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(pause)


class Case:
    """One test's aliases, topology file, clients of the client layer and `mmplan run` processes."""

    def __init__(self, tmp_path, kafka_pair, extra: str = FAST, heartbeat_interval: str = "0.2s"):
        self.id = uuid.uuid4().hex[:6]
        self.src, self.dst = f"e{self.id}", f"w{self.id}"
        self.tmp = tmp_path
        self.file = tmp_path / "topology.yaml"
        text = pair_topology(kafka_pair, self.id, flow_extra=extra)
        text = text.replace(f"heartbeats: {{topic: hb-{self.id}}}",
                            f"heartbeats: {{topic: hb-{self.id}, interval: {heartbeat_interval}}}")
        self.file.write_text(text)
        clusters = load_topology(self.file).topology.clusters
        self.east_cluster, self.west_cluster = clusters[self.src], clusters[self.dst]
        self.east = Admin.connect(self.src, self.east_cluster)
        self.west = Admin.connect(self.dst, self.west_cluster)
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    @property
    def flow(self) -> str:
        return f"{self.src}->{self.dst}"

    def topic(self, name: str) -> str:
        return f"p{self.id}.{name}"

    def remote(self, name: str) -> str:
        return f"{self.src}.{self.topic(name)}"

    def run(self, *args: str) -> subprocess.Popen:
        log = self.tmp / f"run-{len(self.procs)}.log"
        proc = subprocess.Popen([MMPLAN, "run", str(self.file), "--log-format", "json", "--metrics-port", "0", *args],
                                stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                                env={**os.environ, "NO_COLOR": "1"})
        self.procs.append((proc, log))
        return proc

    def log(self, i: int = 0) -> list[dict]:
        return [json.loads(line) for line in self.procs[i][1].read_text().splitlines() if line.strip()]

    def metric(self, name: str, i: int = 0, **labels) -> float | None:

        port = wait_until(lambda: next((d["port"] for d in self.log(i) if "port" in d), None), what="metrics port")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            body = r.read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in body.splitlines():
            if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
                return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self, i: int = 0) -> int:
        proc = self.procs[i][0]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(40)

    def close(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.east.close()
        self.west.close()

    # -- data -----------------------------------------------------------------------------------------------

    def create(self, name: str, partitions: int, shift: dict[int, int] | None = None) -> None:
        """The source topic, and (with `shift`) its remote topic made beforehand on the target holding that many
        records of its own per partition, so target offsets differ from source offsets."""
        assert self.east.create_topics([TopicState(name=self.topic(name), partitions=partitions,
                                                   replication_factor=1)]) == {self.topic(name): None}
        if shift:
            remote = self.remote(name)
            assert self.west.create_topics([TopicState(name=remote, partitions=partitions,
                                                       replication_factor=1)]) == {remote: None}
            p = producer(self.dst, self.west_cluster)
            for partition, n in shift.items():
                for i in range(n):
                    p.send(remote, key=b"junk", value=b"%d" % i, partition=partition)
            p.flush()
            p.close()

    def produce(self, name: str, partition: int, batches: int, size: int) -> None:
        """`batches` record batches of `size` records each (one flush per batch), distinct keys and values."""
        p = producer(self.src, self.east_cluster, linger_ms=100, batch_size=1 << 20)
        for b in range(batches):
            for i in range(size):
                p.send(self.topic(name), key=f"k{partition}-{b}-{i}".encode(), value=f"v{uuid.uuid4().hex}".encode(),
                       partition=partition)
            p.flush()
        p.close()

    def replicated(self, name: str, partitions: int) -> bool:
        src = [TopicPartition(self.topic(name), p) for p in range(partitions)]
        dst = [TopicPartition(self.remote(name), p) for p in range(partitions)]
        try:
            ends = self.east.end_offsets(src)
            group = self.east.group_offsets(self.flow)
        except Exception:
            return False
        return all(group.get(tp) == ends[tp] for tp in src) and bool(self.west.partitions_of([dst[0].topic]))

    def checkpoints(self, group: str) -> dict[tuple[str, int], tuple[Checkpoint, int]]:
        """The newest checkpoint (and its record timestamp) per (remote topic, partition) for `group`."""
        out = {}
        for r in read_topic(self.dst, self.west_cluster, f"{self.src}.checkpoints.internal"):
            c = Checkpoint.decode(r.key, r.value)
            if c.group == group:
                out[(c.topic, c.partition)] = (c, r.timestamp)
        return out

    def record_at(self, cluster: str, topic: str, partition: int, offset: int):
        alias, c = (self.src, self.east_cluster) if cluster == "east" else (self.dst, self.west_cluster)
        records = read_topic(alias, c, topic, start={partition: offset})
        return next((r for r in records if r.partition == partition and r.offset == offset), None)


@pytest.fixture
def case_factory(tmp_path, kafka_pair):
    made = []

    def make(**kwargs) -> Case:
        made.append(Case(tmp_path, kafka_pair, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_heartbeats_arrive_on_the_target_and_status_records_show_the_daemon_start_run_and_stop(case_factory):
    case = case_factory(extra="")
    case.create("a", 1)
    started_ms = int(time.time() * 1000)
    case.run()
    remote_hb = f"{case.src}.hb-{case.id}"

    def heartbeats():
        try:
            records = read_topic(case.dst, case.west_cluster, remote_hb)
        except Exception:
            return None
        return records if len(records) >= 10 else None

    records = wait_until(heartbeats, timeout=40, what="10 heartbeats on the target")
    beats = [Heartbeat.decode(r.key, r.value) for r in records]
    assert {(b.source, b.target) for b in beats} == {(case.src, case.dst)}
    now = int(time.time() * 1000)
    assert all(started_ms - 1000 <= b.timestamp <= now for b in beats)
    assert [b.timestamp for b in beats] == sorted(b.timestamp for b in beats)
    assert all(r.timestamp == b.timestamp for r, b in zip(records, beats, strict=True))
    assert all(r.value[:2] == b"\x00\x00" and len(r.value) == 10 for r in records)  # version 0, timestamp
    # every 0.2 s: the newest is recent once replicated
    assert now - beats[-1].timestamp < 5000
    assert (case.metric("mmplan_heartbeats_total", flow=case.flow) or 0) >= 10

    status_topic = f"mm2-mmplan-status.{case.src}.internal"

    def states():
        try:
            rs = read_topic(case.dst, case.west_cluster, status_topic)
        except Exception:
            return []
        return [StatusRecord.decode(r.value) for r in rs]

    seen = wait_until(lambda: (s := states()) and "running" in [x.state for x in s] and s, timeout=30,
                      what="a running status record")
    assert seen[0].state == "started" and {x.flow for x in seen} == {case.flow}
    assert len({x.daemon for x in seen}) == 1 and seen[0].interval_ms == 5000 and seen[0].version
    assert not seen[-1].stale(int(time.time() * 1000))

    # the flow's settings change (SIGHUP): its runner restarts, its status says stopped, then started, running
    case.file.write_text(case.file.read_text().replace("interval: 0.2s", "interval: 0.3s"))
    case.procs[0][0].send_signal(signal.SIGHUP)

    def restarted():
        names = [x.state for x in states()][len(seen):]
        return "stopped" in names and names[names.index("stopped"):][:2] == ["stopped", "started"] \
            and names[-1] == "running"

    wait_until(restarted, timeout=30, what="stopped, started, running after the restart")

    assert case.stop() == 0
    final = states()
    assert final[-1].state == "stopped" and final[-1].daemon == seen[0].daemon and final[-1].error is None
    assert [x.state for x in final].count("stopped") == 2  # the restart's and the exit's


def test_checkpoints_translate_exactly_including_inside_a_batch_and_skip_excluded_groups(case_factory):
    case = case_factory()
    # target offsets are ahead of source offsets by 3 (partition 0) and 7 (partition 1)
    case.create("orders", 2, shift={0: 3, 1: 7})
    for partition in (0, 1):
        case.produce("orders", partition, batches=4, size=10)  # batches at 0-9, 10-19, 20-29, 30-39
    case.run()
    wait_until(lambda: case.replicated("orders", 2), timeout=40, what="replication")

    group, excluded = f"app-{case.id}", f"console-consumer-{case.id}"
    t0, t1 = TopicPartition(case.topic("orders"), 0), TopicPartition(case.topic("orders"), 1)
    committed = {t0: 25, t1: 10}  # inside the third batch; at a batch boundary
    assert case.east.commit_group_offsets(group, committed) == {t0: None, t1: None}
    assert case.east.commit_group_offsets(excluded, committed) == {t0: None, t1: None}
    early = f"early-{case.id}"  # inside the first batch: no sync at or below it, so no translation
    assert case.east.commit_group_offsets(early, {t0: 5, t1: 40}) == {t0: None, t1: None}

    def exact():
        found = case.checkpoints(group)
        ok = all(found.get((case.remote("orders"), tp.partition), (None,))[0] is not None
                 and found[(case.remote("orders"), tp.partition)][0].upstream_offset == offset
                 for tp, offset in committed.items())
        return found if ok else None

    found = wait_until(exact, timeout=30, what="checkpoints of the group")
    for tp, offset in committed.items():
        checkpoint, timestamp = found[(case.remote("orders"), tp.partition)]
        assert checkpoint.metadata == "" and abs(timestamp - time.time() * 1000) < 30_000
        source = case.record_at("east", tp.topic, tp.partition, offset)
        target = case.record_at("west", case.remote("orders"), tp.partition, checkpoint.downstream_offset)
        assert (target.key, target.value) == (source.key, source.value), (tp, offset, checkpoint)
    assert found[(case.remote("orders"), 0)][0].downstream_offset == 28
    assert found[(case.remote("orders"), 1)][0].downstream_offset == 17
    wait_until(lambda: {k: (c.upstream_offset, c.downstream_offset) for k, (c, _) in case.checkpoints(early).items()}
               == {(case.remote("orders"), 1): (40, 47)}, what="the early group's only checkpoint")
    assert case.checkpoints(excluded) == {}

    # at the end of the topic: the target's end, where the next replicated record will land
    at_end = {t0: 40, t1: 40}
    case.east.commit_group_offsets(group, at_end)
    wait_until(lambda: all(case.checkpoints(group)[(case.remote("orders"), p)][0].upstream_offset == 40
                           for p in (0, 1)), what="checkpoints at the end")
    newest = case.checkpoints(group)
    assert newest[(case.remote("orders"), 0)][0].downstream_offset == 43
    assert newest[(case.remote("orders"), 1)][0].downstream_offset == 47

    # nothing changes: the group still gets a checkpoint record every interval (its freshness)
    before = max(ts for _, ts in case.checkpoints(group).values())
    time.sleep(2.5)
    assert max(ts for _, ts in case.checkpoints(group).values()) > before
    assert (case.metric("mmplan_checkpoints_total", flow=case.flow) or 0) >= 4
    assert case.metric("mmplan_checkpoint_last_timestamp_seconds", flow=case.flow) > before / 1000 - 1
    assert case.stop() == 0


def test_group_offset_sync_commits_idle_groups_never_rewinds_and_never_touches_active_ones(case_factory):
    case = case_factory()
    case.create("orders", 1, shift={0: 5})
    case.produce("orders", 0, batches=3, size=10)
    remote = TopicPartition(case.remote("orders"), 0)
    source = TopicPartition(case.topic("orders"), 0)
    idle, active = f"idle-{case.id}", f"active-{case.id}"

    # a consumer of `active` on the target, a member all along, that never commits
    stop = threading.Event()
    member = KafkaConsumer(remote.topic, bootstrap_servers=list(case.west_cluster.bootstrap_servers),
                           group_id=active, enable_auto_commit=False, auto_offset_reset="latest")

    def keep_polling():
        while not stop.is_set():
            member.poll(timeout_ms=200)

    poller = threading.Thread(target=keep_polling, daemon=True)
    poller.start()
    try:
        wait_until(lambda: case.west.group_members(active) == ("Stable", 1), what="the active member")
        case.run()
        wait_until(lambda: case.replicated("orders", 1), timeout=40, what="replication")
        assert case.east.commit_group_offsets(idle, {source: 15}) == {source: None}
        assert case.east.commit_group_offsets(active, {source: 15}) == {source: None}

        # the idle target group (it does not exist there yet) gets the translation: 15 + 5
        wait_until(lambda: case.west.group_offsets(idle) == {remote: 20}, what="the synced offset")
        # an operator (or a consumer) moved it further by hand: the sync leaves it there
        assert case.west.commit_group_offsets(idle, {remote: 27}) == {remote: None}
        synced = case.metric("mmplan_group_offset_syncs_total", flow=case.flow, result="current") or 0
        wait_until(lambda: (case.metric("mmplan_group_offset_syncs_total", flow=case.flow, result="current")
                            or 0) >= synced + 2, what="two more sync rounds")
        assert case.west.group_offsets(idle) == {remote: 27}
        # the source group moves past it: the target follows, forwards
        case.east.commit_group_offsets(idle, {source: 30})
        wait_until(lambda: case.west.group_offsets(idle) == {remote: 35}, what="the forward sync")

        # the active group was never written on the target
        assert (case.metric("mmplan_group_offset_syncs_total", flow=case.flow, result="active") or 0) >= 2
        assert case.west.group_offsets(active) == {}
        assert case.west.group_members(active) == ("Stable", 1)
    finally:
        stop.set()
        poller.join(5)
        member.close(autocommit=False)
    # once the member left, the group is Empty on the target and is synced at the next round
    wait_until(lambda: case.west.group_offsets(active) == {remote: 20}, what="the sync after the member left")
    assert case.stop() == 0


def test_two_daemons_on_one_flow_each_report_their_own_status_and_checkpoints_stay_exact(case_factory):
    case = case_factory()
    case.create("orders", 2, shift={0: 2, 1: 4})
    for partition in (0, 1):
        case.produce("orders", partition, batches=3, size=10)
    case.run()
    case.run()
    wait_until(lambda: case.replicated("orders", 2), timeout=40, what="replication")
    group = f"app-{case.id}"
    t0, t1 = TopicPartition(case.topic("orders"), 0), TopicPartition(case.topic("orders"), 1)
    case.east.commit_group_offsets(group, {t0: 15, t1: 14})
    wait_until(lambda: {k: c.downstream_offset for k, (c, _) in case.checkpoints(group).items()}
               == {(case.remote("orders"), 0): 17, (case.remote("orders"), 1): 18}, what="exact checkpoints")

    status_topic = f"mm2-mmplan-status.{case.src}.internal"

    def newest_per_daemon():
        out = {}
        for r in read_topic(case.dst, case.west_cluster, status_topic):
            s = StatusRecord.decode(r.value)
            out[s.daemon] = s.state
        return out

    wait_until(lambda: (s := newest_per_daemon()) and len(s) == 2 and set(s.values()) == {"running"},
               what="two running daemons")
    assert case.stop(1) == 0
    states = newest_per_daemon()
    assert sorted(states.values()) == ["running", "stopped"]
    # the survivor goes on checkpointing
    case.east.commit_group_offsets(group, {t0: 30})
    wait_until(lambda: case.checkpoints(group)[(case.remote("orders"), 0)][0].downstream_offset == 32,
               what="a checkpoint from the remaining daemon")
    assert case.stop(0) == 0
    assert set(newest_per_daemon().values()) == {"stopped"}


def test_an_unreachable_target_is_logged_once_counted_shown_and_the_stop_stays_bounded(case_factory, kafka_pair):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    case = case_factory()
    case.file.write_text(case.file.read_text().replace(kafka_pair.cluster("us-west").bootstrap_servers,
                                                       f"127.0.0.1:{dead}"))
    case.run("--timeout", "1")
    wait_until(lambda: (case.metric("mmplan_errors_total", flow=case.flow, kind="status") or 0) >= 3,
               timeout=40, what="three failed status writes")
    port = next(d["port"] for d in case.log() if "port" in d)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        raise AssertionError("healthy with an unreachable target")
    except urllib.error.HTTPError as e:
        health = json.loads(e.read())
    assert f"cluster {case.dst}" in health["side_work"][case.flow]["status"]
    warned = [d for d in case.log() if d["level"] == "warning" and d.get("side") == "status"]
    assert len(warned) == 1 and warned[0]["cluster"] == case.dst and case.dst in warned[0]["msg"]
    started = time.monotonic()
    assert case.stop() == 0
    assert time.monotonic() - started < 35
