"""Real MirrorMaker 2 (dedicated mode, Kafka's jars from the sandbox's Maven cache) in a process of its own.

`Mm2(tmp_path, source=(alias, bootstrap), target=(alias, bootstrap), topics=regex)` starts
`org.apache.kafka.connect.mirror.MirrorMaker` with one enabled flow source->target, short intervals
(checkpoints, heartbeats, topic and group refresh every second) and WARN logging to a file; `stop()` ends
exactly that process (by pid, its own process group).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from mmplan.sandbox import maven
from mmplan.sandbox.java import find_java

HEAP = "-Xmx384m"


def _log4j2(path: Path, logfile: Path) -> Path:
    path.write_text("status = error\n"
                    "appender.file.type = File\n"
                    "appender.file.name = file\n"
                    f"appender.file.fileName = {logfile}\n"
                    "appender.file.layout.type = PatternLayout\n"
                    "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
                    "rootLogger.level = warn\n"
                    "rootLogger.appenderRef.file.ref = file\n")
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
            f"{src}->{tgt}.topics": topics.replace("\\", "\\\\"),  # a properties file unescapes backslashes
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
            f"{src}->{tgt}.worker.offset.flush.interval.ms": "1000",  # Connect offsets (the position) every 1s
            **(extra or {}),
        }
        self.properties = work / "mm2.properties"
        self.properties.write_text("".join(f"{k} = {v}\n" for k, v in props.items()))
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
