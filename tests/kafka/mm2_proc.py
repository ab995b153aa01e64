"""Real MirrorMaker 2 (dedicated mode, Kafka's jars from the sandbox's Maven cache) in a process of its own.

`Mm2(tmp_path, source=(alias, bootstrap), target=(alias, bootstrap), topics=regex)` starts
`org.apache.kafka.connect.mirror.MirrorMaker` with one enabled flow source->target, short intervals
(checkpoints, heartbeats, topic and group refresh every second) and WARN logging to a file; `stop()` ends
exactly that process (by pid, its own process group).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mmplan.mm2.properties import line
from mmplan.sandbox import maven
from mmplan.sandbox.java import find_java
from mmplan.sandbox.properties import log4j2_properties

HEAP = "-Xmx384m"


def _log4j2(path: Path, logfile: Path) -> Path:
    path.write_text(log4j2_properties(logfile, "WARN"))
    return path


class Mm2:
    def __init__(self, work: Path, source: tuple[str, str], target: tuple[str, str], topics: str,
                 extra: dict[str, str] | None = None):
        work.mkdir(parents=True, exist_ok=True)
        (src, src_servers), (tgt, tgt_servers) = source, target
        props = {
            "clusters": f"{src}, {tgt}",
            f"{src}.bootstrap.servers": src_servers,
            f"{tgt}.bootstrap.servers": tgt_servers,
            f"{src}->{tgt}.enabled": "true",
            f"{src}->{tgt}.topics": topics,
            f"{tgt}->{src}.enabled": "false",
            "replication.factor": "1",
            "checkpoints.topic.replication.factor": "1",
            "heartbeats.topic.replication.factor": "1",
            "offset-syncs.topic.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "config.storage.replication.factor": "1",
            "refresh.topics.interval.seconds": "1",
            "refresh.groups.interval.seconds": "1",
            "emit.checkpoints.interval.seconds": "1",
            "emit.heartbeats.interval.seconds": "1",
            "sync.group.offsets.interval.seconds": "1",
            f"{tgt}.offset.flush.interval.ms": "1000",  # the worker writes its Connect offsets (position) every 1s
            **(extra or {}),
        }
        self.properties = work / "mm2.properties"
        self.properties.write_text("".join(line(k, v) + "\n" for k, v in props.items()))
        self.log = work / "mm2.log"
        config = _log4j2(work / "log4j2.properties", self.log)
        argv = [find_java(), HEAP, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={config}", "-cp", maven.classpath(),
                "org.apache.kafka.connect.mirror.MirrorMaker", str(self.properties)]
        with open(work / "mm2.out", "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM this MirrorMaker's process group (its own session), SIGKILL after `timeout`."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


# -- helpers the ops tests share -----------------------------------------------------------------------------------

MMPLAN = str(Path(sys.executable).with_name("mmplan"))
JAVA_SOURCE = Path(__file__).parent.parent / "java" / "Mm2Interop.java"


def mmplan(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    """Run the installed `mmplan` console script; (exit code, stdout, stderr)."""
    done = subprocess.run([MMPLAN, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1"})
    return done.returncode, done.stdout, done.stderr


def mmplan_json(*args: str, timeout: float = 120) -> tuple[int, dict]:
    code, out, err = mmplan(*args, "--format", "json", timeout=timeout)
    assert out.strip(), f"mmplan {' '.join(args)} exited {code} with no output:\n{err}"
    return code, json.loads(out)


def java_interop(work: Path, bootstrap: str, source: str, group: str, heartbeats_topic: str) -> dict:
    """Compile tests/java/Mm2Interop.java (once per directory) against Kafka's jars and run it: MirrorMaker 2's
    RemoteClusterUtils answers and decoded heartbeats, as a dict."""
    java = find_java()
    classes = work / "java-classes"
    cp = maven.classpath()
    if not (classes / "Mm2Interop.class").exists():
        classes.mkdir(parents=True, exist_ok=True)
        javac = Path(java).with_name("javac")
        subprocess.run([str(javac if javac.exists() else "javac"), "-cp", cp, "-d", str(classes), str(JAVA_SOURCE)],
                       check=True, capture_output=True, timeout=120)
    done = subprocess.run([java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", f"{cp}{os.pathsep}{classes}",
                           "Mm2Interop", bootstrap, source, group, heartbeats_topic],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_for(predicate, timeout: float, what: str, every: float = 0.5):
    """Call `predicate` until it returns something truthy (returned) or `timeout` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def produce_indexed(producer, topic: str, partitions: int, per_partition: int, start: int = 0) -> None:
    """`per_partition` records on each partition, value `<partition>:<index>` (index = the source offset, counting
    from `start`)."""
    for i in range(start, start + per_partition):
        for p in range(partitions):
            producer.send(topic, value=f"{p}:{i}".encode(), partition=p)
    producer.flush(30)


def read_from_committed(consumer, group_topic: str, partitions: int, timeout: float = 20) -> dict[int, list[int]]:
    """With a consumer of the group (not subscribed), read each partition of `group_topic` from the group's
    committed offset to the end: partition -> the source indexes read."""
    from kafka import TopicPartition

    tps = [TopicPartition(group_topic, p) for p in range(partitions)]
    consumer.assign(tps)
    for tp in tps:
        committed = consumer.committed(tp)
        assert committed is not None, f"group has no committed offset on {tp}"
        consumer.seek(tp, committed)
    ends = consumer.end_offsets(tps)
    out: dict[int, list[int]] = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + timeout
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        assert time.monotonic() < deadline, "reading the remote topic did not reach its end"
        for tp, records in consumer.poll(timeout_ms=200).items():
            out[tp.partition] += [int(r.value.split(b":")[1]) for r in records if r.offset < ends[tp]]
    return out


def ops_topology(pair, run_id: str, *, heartbeats_topic: str | None = None, rpo: str = "30s",
                 extra: str = "", east: str | None = None) -> str:
    """One flow e<id> -> w<id> over the shared pair replicating `p<id>.*`, with short intervals (heartbeats
    0.2s, checkpoints 1s, topic refresh 1s) and an rpo; the heartbeats topic is `hb-<id>` unless named; `east`
    replaces the source's bootstrap servers (a dead address: the source is gone)."""
    east = east or pair.cluster("us-east").bootstrap_servers
    west = pair.cluster("us-west").bootstrap_servers
    return f"""\
version: 1
defaults: {{replication_factor: 1}}
clusters:
  e{run_id}: {{bootstrap_servers: "{east}", brokers: 1}}
  w{run_id}: {{bootstrap_servers: "{west}", brokers: 1}}
flows:
  - source: e{run_id}
    target: w{run_id}
    topics: {{include: ["p{run_id}\\\\..*"]}}
    heartbeats: {{topic: {heartbeats_topic or f"hb-{run_id}"}, interval: 200ms}}
    checkpoints: {{interval: 1s}}
    refresh_topics: {{interval: 1s}}
    rpo: {rpo}
{extra}"""


class Daemon:
    """`mmplan run FILE` in a process of its own (JSON logs to a file), stopped by pid."""

    def __init__(self, work: Path, file: Path):
        self.log = work / f"run-{os.getpid()}-{time.monotonic_ns()}.log"
        self._out = open(self.log, "w")
        # one daemon per topology here: no applier election (--no-lease), it applies at once
        self.proc = subprocess.Popen([MMPLAN, "run", str(file), "--log-format", "json", "--no-lease"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=self._out, env={**os.environ, "NO_COLOR": "1"})

    def stop(self, timeout: float = 40) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()
