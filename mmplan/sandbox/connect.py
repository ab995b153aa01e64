"""A real Kafka Connect worker (distributed mode, `ConnectDistributed`) beside the sandbox's clusters,
for flows with `engine: connect`. Its internal topics live on the flow's target (the second cluster),
as MirrorMaker 2's dedicated mode does; MirrorMaker 2's connectors come from the same jar cache."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from mmplan.errors import MmplanError
from mmplan.sandbox import maven, ports, process, state
from mmplan.sandbox.java import check_java
from mmplan.sandbox.properties import log4j2_properties, render_properties
from mmplan.sandbox.state import ConnectWorker, Sandbox

# One worker next to the brokers on 2 cores: C1 only and a small heap, like the brokers.
CONNECT_JVM_FLAGS = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                     "-XX:MaxMetaspaceSize=256m", "-Djava.awt.headless=true"]
GROUP_ID = "mmplan-sandbox-connect"
BYTES = "org.apache.kafka.connect.converters.ByteArrayConverter"


def worker_properties(sb: Sandbox, worker: ConnectWorker) -> dict[str, str]:
    if sb.security != "plaintext":
        raise MmplanError("the sandbox's Connect worker needs a plaintext sandbox",
                          hint="run `mmplan sandbox up --connect` without --security")
    cluster = sb.cluster(worker.cluster)
    rf = str(min(3, len(cluster.nodes)))
    return {
        "bootstrap.servers": cluster.bootstrap_servers,
        "group.id": GROUP_ID,
        "config.storage.topic": "mmplan-connect-configs", "config.storage.replication.factor": rf,
        "offset.storage.topic": "mmplan-connect-offsets", "offset.storage.replication.factor": rf,
        "offset.storage.partitions": "1",
        "status.storage.topic": "mmplan-connect-status", "status.storage.replication.factor": rf,
        "status.storage.partitions": "1",
        "key.converter": BYTES, "value.converter": BYTES,
        "listeners": worker.url, "rest.advertised.host.name": state.HOST, "rest.advertised.port": str(worker.port),
        "offset.flush.interval.ms": "1000",
        "config.providers": "env,dir",
        "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        "config.providers.dir.class": "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
        "connector.client.config.override.policy": "All",
    }


def start(sb: Sandbox, timeout: float = 120.0, say: Callable[[str], None] = lambda _m: None) -> ConnectWorker:
    """Start the worker (on the recorded port when restarting), record its pid, wait for its REST API."""
    if sb.connect is not None and process.is_ours(sb.connect.pid, sb.connect_dir):
        return sb.connect
    backing = sb.clusters[1 if len(sb.clusters) > 1 else 0].alias
    worker = sb.connect or ConnectWorker(cluster=backing, port=ports.allocate(1, None)[0])
    ports.check_free([worker.port])
    d = sb.connect_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "worker.properties").write_text(render_properties(worker_properties(sb, worker)))
    (d / "log4j2.properties").write_text(log4j2_properties(d / "connect.log"))
    argv = [check_java(), *CONNECT_JVM_FLAGS, process.MARKER + str(d),
            f"-Dlog4j2.configurationFile={d / 'log4j2.properties'}", "-cp", maven.classpath(),
            "org.apache.kafka.connect.cli.ConnectDistributed", str(d / "worker.properties")]
    began = time.monotonic()
    worker.pid = process.start(argv, cwd=d, output=d / "stdout.log")
    sb.connect = worker
    state.save(sb)
    say(f"started a Kafka Connect worker (pid {worker.pid}); waiting for {worker.url}")
    try:
        _wait(sb, worker, timeout)
    except BaseException:
        stop(sb)
        raise
    say(f"Kafka Connect ready at {worker.url} in {time.monotonic() - began:.1f}s")
    return worker


def _wait(sb: Sandbox, worker: ConnectWorker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.exited(worker.pid):
            raise MmplanError(f"the Kafka Connect worker exited during start-up; last lines:\n{_tail(sb)}",
                              where=str(sb.connect_dir / "connect.log"))
        if ready(worker):
            return
        if time.monotonic() > deadline:
            raise MmplanError(f"Kafka Connect did not answer at {worker.url} within {timeout:.0f}s; last lines:\n"
                              f"{_tail(sb)}", where=str(sb.connect_dir / "connect.log"))
        time.sleep(0.5)


def ready(worker: ConnectWorker) -> bool:
    """The REST API answers and lists MirrorMaker 2's connector plugins."""
    try:
        with urllib.request.urlopen(worker.url + "/connector-plugins", timeout=3) as r:
            plugins = json.loads(r.read())
        with urllib.request.urlopen(worker.url + "/connectors", timeout=3) as r:
            r.read()
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return any(p.get("class", "").endswith("MirrorSourceConnector") for p in plugins)


def stop(sb: Sandbox, timeout: float = 30.0) -> list[int]:
    """Stop the recorded worker by its pid; keeps the record (port) for a restart."""
    if sb.connect is None or not sb.connect.pid:
        return []
    stopped = process.stop([(sb.connect.pid, sb.connect_dir)], timeout=timeout)
    sb.connect.pid = None
    return stopped


def _tail(sb: Sandbox, lines: int = 15) -> str:
    parts = []
    for name in ("connect.log", "stdout.log"):
        f = sb.connect_dir / name
        if f.exists():
            text = [ln for ln in f.read_text(errors="replace").splitlines()
                    if " ERROR " in ln or "Exception" in ln] or f.read_text(errors="replace").splitlines()
            parts += text[-lines:]
    return "\n".join(parts) or "(no log output)"
