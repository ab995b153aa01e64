"""`mmplan status`, `offsets translate`, `failover` and `drill` against flows run by `mmplan run` on the sandbox
pair: a failed-over group re-reads and misses nothing; a stopped daemon is down, an RPO breach is breached; a drill
passes on a healthy flow and fails on a stopped one."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition
from mm2_proc import Daemon, mmplan, mmplan_json, ops_topology, produce_indexed, read_from_committed, wait_for

pytestmark = pytest.mark.kafka

PARTITIONS = 3
RECORDS = 200  # per partition
COMMITTED = {0: 150, 1: 160, 2: 170}  # what the application had processed on the source


def commit(config: dict, clients, group: str, topic: str, offsets: dict[int, int]) -> None:
    c = clients.consumer(config, group_id=group, enable_auto_commit=False)
    c.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    c.close()


def test_failover_status_and_drill_with_the_daemon(kafka_pair, clients, tmp_path):
    run = uuid.uuid4().hex[:6]
    src, dst, topic = f"e{run}", f"w{run}", f"p{run}.orders"
    remote, flow, group = f"{src}.{topic}", f"{src}->{dst}", f"app-{run}"
    file = tmp_path / "topology.yaml"
    file.write_text(ops_topology(kafka_pair, run))
    east, west = kafka_pair.kafka_config("us-east"), kafka_pair.kafka_config("us-west")
    clients.admin(east).create_topics([NewTopic(topic, PARTITIONS, 1)])
    daemon = Daemon(tmp_path, file)
    try:
        # in small batches while the daemon runs: offset syncs cover every batch, so every offset translates
        # (an offset inside a partition's first forwarded batch has no sync at or below it, hence no checkpoint)
        producer = clients.producer(east)
        for start in range(0, RECORDS, 20):
            produce_indexed(producer, topic, PARTITIONS, 20, start=start)
        commit(east, clients, group, topic, COMMITTED)

        def translated():
            code, doc = mmplan_json("offsets", "translate", str(file), "--flow", flow, "--group", group)
            return code == 0 and len(doc["partitions"]) == PARTITIONS and doc

        doc = wait_for(translated, 60, "checkpoints of the group")
        assert {(p["topic"], p["partition"], p["source_offset"]) for p in doc["partitions"]} == {
            (remote, p, o) for p, o in COMMITTED.items()}

        def caught_up():
            code, doc = mmplan_json("status", str(file))
            [f] = doc["flows"]
            return code == 0 and f["lag"] and f["lag"].get(topic) == 0 and f

        status = wait_for(caught_up, 60, "status healthy with no lag")
        assert (status["state"], status["engine"], status["verdict"]) == ("running", "mmplan", "ok")
        assert status["heartbeat_age_ms"] < 3 * 200
        assert status["groups"][0]["group"] == group and status["groups"][0]["current"]

        # the failover: re-reads nothing, misses nothing
        code, out, err = mmplan("failover", str(file), "--flow", flow, "--group", group)
        assert code == 0, out + err
        assert f"{topic} -> {remote}" in out and kafka_pair.cluster("us-west").bootstrap_servers in out
        read = read_from_committed(clients.consumer(west, group_id=group, enable_auto_commit=False), remote,
                                   PARTITIONS)
        reread = {p: sum(1 for i in read[p] if i < COMMITTED[p]) for p in read}
        missed = {p: len(set(range(COMMITTED[p], RECORDS)) - set(read[p])) for p in read}
        print(f"mmplan daemon's checkpoints: re-read per partition {reread}, missed {missed}")
        assert reread == {0: 0, 1: 0, 2: 0} and missed == {0: 0, 1: 0, 2: 0}
        # failing over again changes nothing (the group is already there) and never rewinds
        code, doc = mmplan_json("failover", str(file), "--flow", flow, "--group", group, "--dry-run")
        assert code == 0 and all(p["commit"] is None for p in doc["partitions"])

        # a consumer of the group running on the target: failover refuses
        active = clients.consumer(west, remote, group_id=group, enable_auto_commit=False)
        wait_for(lambda: active.poll(timeout_ms=200) is not None and active.assignment(), 30, "the consumer to join")
        code, out, err = mmplan("failover", str(file), "--flow", flow, "--group", group, "--dry-run")
        assert code == 1 and "active member" in err, out + err
        active.close()

        # the return trip: the group's offsets on the target map back exactly to where it was on the source
        code, doc = mmplan_json("failback", str(file), "--flow", flow, "--group", group, "--dry-run")
        assert code == 0, doc
        assert {(p["topic"], p["partition"], p["translated"], p["exact"]) for p in doc["partitions"]} == {
            (topic, p, o, True) for p, o in COMMITTED.items()}
        assert {"setting": "topic", "change": f"{remote} -> {topic}"} in doc["application"]
        # the application consumed everything on the target; failing back puts the group at the end on the source
        on_target = clients.consumer(west, group_id=group, enable_auto_commit=False)
        on_target.commit({TopicPartition(remote, p): OffsetAndMetadata(RECORDS, "", -1) for p in range(PARTITIONS)})
        on_target.close()
        code, out, err = mmplan("failback", str(file), "--flow", flow, "--group", group)
        assert code == 0 and "Committed 3 of 3 partitions." in out, out + err
        on_source = clients.consumer(east, group_id=group, enable_auto_commit=False)
        assert [on_source.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)] == [RECORDS] * PARTITIONS
        on_source.close()

        def checkpoints_follow():
            code, doc = mmplan_json("offsets", "translate", str(file), "--flow", flow, "--group", group)
            return all(p["source_offset"] == RECORDS for p in doc["partitions"])

        wait_for(checkpoints_follow, 30, "checkpoints of the group at its new source offsets")

        code, doc = mmplan_json("drill", str(file), "--flow", flow, "--topic", f"p{run}.drill", "--timeout", "60")
        assert code == 0 and doc["passed"], doc["failures"]
        assert doc["missed"] == 0 and doc["reread"] == 0 and doc["replication_latency_ms"] < 10_000
        print(f"drill on the daemon: {doc}")
    finally:
        assert daemon.stop() == 0

    code, doc = mmplan_json("status", str(file))
    [f] = doc["flows"]
    assert code == 1 and f["state"] == "stopped" and not f["healthy"]

    started = time.monotonic()
    code, doc = mmplan_json("drill", str(file), "--flow", flow, "--topic", f"p{run}.drill", "--timeout", "20")
    assert code == 1 and not doc["passed"] and "stopped" in doc["failures"][0]
    assert time.monotonic() - started < 20

    # the source is gone (the disaster): failover answers from the checkpoints alone, whose age now counts
    gone = tmp_path / "gone.yaml"
    gone.write_text(ops_topology(kafka_pair, run, rpo="1h", east="127.0.0.1:1"))
    code, doc = mmplan_json("failover", str(gone), "--flow", flow, "--group", group, "--dry-run", "--timeout", "2")
    assert code == 0 and doc["refused"] is None, doc
    assert {(p["partition"], p["source_offset"], p["translated"], p["from"]) for p in doc["partitions"]} == {
        (p, RECORDS, RECORDS, "checkpoint") for p in range(PARTITIONS)}
    assert any("checkpoints only" in n for n in doc["notes"])
    gone.write_text(ops_topology(kafka_pair, run, rpo="1s", east="127.0.0.1:1"))
    code, out, err = mmplan("failover", str(gone), "--flow", flow, "--group", group, "--dry-run", "--timeout", "2")
    assert code == 1 and "over the flow's rpo" in err and "--force" in err, out + err

    # the same flow with a 1s rpo: the newest heartbeat is soon older than that
    tight = tmp_path / "tight.yaml"
    tight.write_text(ops_topology(kafka_pair, run, rpo="1s"))
    time.sleep(1.5)
    code, doc = mmplan_json("status", str(tight))
    assert code == 1 and doc["flows"][0]["verdict"] == "breached"
    code, out, _ = mmplan("status", str(tight))
    assert "verdict      breached" in out and "1 of 1 flows down or over their RPO." in out

    # a daemon that dies (kill -9) writes no "stopped": its heartbeats stop, then its status record goes stale
    daemon = Daemon(tmp_path, file)
    try:
        wait_for(lambda: mmplan_json("status", str(file))[0] == 0, 60, "the restarted daemon to run")
        daemon.proc.kill()
        daemon.proc.wait(10)

        def noticed():
            code, doc = mmplan_json("status", str(file))
            [f] = doc["flows"]
            return code == 1 and f["state"] in ("stalled", "down") and not f["up"] and f

        f = wait_for(noticed, 30, "status to notice the dead daemon")
        print(f"dead daemon: {f['state']}: {f['reason']}")
    finally:
        daemon.close()
