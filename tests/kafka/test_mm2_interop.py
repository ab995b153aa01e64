"""mmplan's ops commands and real MirrorMaker 2, both ways:

- with real MirrorMaker 2 (dedicated mode, Kafka's jars) replicating between the sandbox pair, `mmplan status`
  and `mmplan offsets translate` report its flow, `offsets translate` agrees with Java's
  `RemoteClusterUtils.translateOffsets`, and `mmplan failover` moves a group from its checkpoints;
- with `mmplan run` writing the checkpoints and heartbeats, Java's `translateOffsets`, `upstreamClusters`,
  `replicationHops` and `Heartbeat` decoder agree with mmplan.

The Java side is tests/java/Mm2Interop.java, compiled by the test with javac against the same jars.
"""

from __future__ import annotations

import uuid

import pytest
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition
from mm2_proc import (
    Daemon,
    Mm2,
    java_interop,
    mmplan,
    mmplan_json,
    ops_topology,
    produce_indexed,
    read_from_committed,
    wait_for,
)

pytestmark = pytest.mark.kafka

PARTITIONS = 3
RECORDS = 300  # per partition: MirrorMaker 2 writes an offset sync every 100 records (offset.lag.max)
COMMITTED = {0: 150, 1: 160, 2: 170}


def _commit(config: dict, clients, group: str, topic: str, offsets: dict[int, int]) -> None:
    c = clients.consumer(config, group_id=group, enable_auto_commit=False)
    c.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    c.close()


def _agree(file, flow: str, group: str, bootstrap: str, source: str, heartbeats: str, work) -> dict:
    """Java's translateOffsets and `mmplan offsets translate` give the same partitions and offsets (checkpoints
    may change between the two reads: retried); the Java answer."""
    def same():
        code, mine = mmplan_json("offsets", "translate", str(file), "--flow", flow, "--group", group)
        java = java_interop(work, bootstrap, source, group, heartbeats)
        ours = {(p["topic"], p["partition"], p["offset"]) for p in mine["partitions"]}
        theirs = {(p["topic"], p["partition"], p["offset"]) for p in java["offsets"]}
        return code == 0 and len(ours) == PARTITIONS and ours == theirs and java

    return wait_for(same, 30, "mmplan and RemoteClusterUtils.translateOffsets to agree", every=1)


def _reread(read: dict[int, list[int]]) -> dict[int, int]:
    return {p: sum(1 for i in read[p] if i < COMMITTED[p]) for p in read}


def _missed(read: dict[int, list[int]]) -> dict[int, int]:
    return {p: len(set(range(COMMITTED[p], RECORDS)) - set(read[p])) for p in read}


def test_mmplan_reads_what_real_mirrormaker_2_writes(kafka_pair, clients, tmp_path):
    run = uuid.uuid4().hex[:6]
    src, dst, topic = f"e{run}", f"w{run}", f"p{run}.orders"
    remote, flow, group = f"{src}.{topic}", f"{src}->{dst}", f"app-{run}"
    east, west = kafka_pair.kafka_config("us-east"), kafka_pair.kafka_config("us-west")
    east_servers = kafka_pair.cluster("us-east").bootstrap_servers
    west_servers = kafka_pair.cluster("us-west").bootstrap_servers
    file = tmp_path / "topology.yaml"
    file.write_text(ops_topology(kafka_pair, run, heartbeats_topic="heartbeats", rpo="30s"))
    clients.admin(east).create_topics([NewTopic(topic, PARTITIONS, 1)])

    mm2 = Mm2(tmp_path / "mm2", (src, east_servers), (dst, west_servers), rf"p{run}\..*")
    try:
        producer = clients.producer(east)
        for start in range(0, RECORDS, 50):
            produce_indexed(producer, topic, PARTITIONS, 50, start=start)
        _commit(east, clients, group, topic, COMMITTED)

        def checkpointed():
            code, doc = mmplan_json("offsets", "translate", str(file), "--flow", flow, "--group", group)
            got = {p["partition"]: p["source_offset"] for p in doc["partitions"]}
            return code == 0 and got == COMMITTED

        wait_for(checkpointed, 90, "MirrorMaker 2's checkpoints of the group", every=1)
        java = _agree(file, flow, group, west_servers, src, f"{src}.heartbeats", tmp_path)
        assert src in java["upstream_clusters"] and java["hops"] == 1
        # MirrorMaker 2's heartbeats on the target come from the reverse herder: key (target, source)
        assert java["heartbeats"] and all({h["source"], h["target"]} == {src, dst} for h in java["heartbeats"])

        def reported():
            code, doc = mmplan_json("status", str(file))
            [f] = doc["flows"]
            return code == 0 and f["lag"] and f["lag"].get(topic) == 0 and f

        status = wait_for(reported, 60, "status of MirrorMaker 2's flow with no lag", every=1)
        assert (status["state"], status["engine"], status["verdict"]) == ("running", "mirrormaker2", "ok")
        assert status["groups"] and status["groups"][0]["group"] == group

        # MirrorMaker 2's own answer (RemoteClusterUtils.translateOffsets, the seed guide's step 5) committed to
        # a group on the target, against `mmplan failover` of the application's group
        mm2_group = f"{group}-rcu"
        _commit(west, clients, mm2_group, remote, {p["partition"]: p["offset"] for p in java["offsets"]})
        mm2_read = read_from_committed(clients.consumer(west, group_id=mm2_group, enable_auto_commit=False),
                                       remote, PARTITIONS)
        code, out, err = mmplan("failover", str(file), "--flow", flow, "--group", group)
        assert code == 0, out + err
        ours = read_from_committed(clients.consumer(west, group_id=group, enable_auto_commit=False), remote,
                                   PARTITIONS)
        print(f"\nMirrorMaker 2 checkpoints (translateOffsets): re-read {_reread(mm2_read)}, "
              f"missed {_missed(mm2_read)}")
        print(f"mmplan failover from MirrorMaker 2's checkpoints and offset syncs: re-read {_reread(ours)}, "
              f"missed {_missed(ours)}")
        assert _missed(mm2_read) == _missed(ours) == {0: 0, 1: 0, 2: 0}
        assert all(_reread(ours)[p] <= _reread(mm2_read)[p] for p in range(PARTITIONS))
    finally:
        mm2.stop()

    def down():
        code, doc = mmplan_json("status", str(file))
        return code == 1 and doc["flows"][0]["state"] == "down" and doc["flows"][0]

    wait_for(down, 30, "status to report the stopped MirrorMaker 2 as down", every=1)


def test_java_agrees_with_what_the_mmplan_daemon_writes(kafka_pair, clients, tmp_path):
    run = uuid.uuid4().hex[:6]
    src, dst, topic = f"e{run}", f"w{run}", f"p{run}.orders"
    remote, flow, group = f"{src}.{topic}", f"{src}->{dst}", f"app-{run}"
    east = kafka_pair.kafka_config("us-east")
    west_servers = kafka_pair.cluster("us-west").bootstrap_servers
    file = tmp_path / "topology.yaml"
    file.write_text(ops_topology(kafka_pair, run, heartbeats_topic="heartbeats"))
    clients.admin(east).create_topics([NewTopic(topic, PARTITIONS, 1)])
    daemon = Daemon(tmp_path, file)
    try:
        producer = clients.producer(east)
        for start in range(0, RECORDS, 50):
            produce_indexed(producer, topic, PARTITIONS, 50, start=start)
        _commit(east, clients, group, topic, COMMITTED)

        java = _agree(file, flow, group, west_servers, src, f"{src}.heartbeats", tmp_path)
        assert {(p["topic"], p["partition"], p["offset"]) for p in java["offsets"]} == {
            (remote, p, o) for p, o in COMMITTED.items()}  # exact: the daemon syncs every batch
        assert src in java["upstream_clusters"] and java["hops"] == 1
        mine = [h for h in java["heartbeats"] if (h["source"], h["target"]) == (src, dst)]
        assert mine and all(h["timestamp"] == h["record_timestamp"] for h in mine)
    finally:
        assert daemon.stop() == 0
