"""Bring sandbox clusters up, report on them and take them down."""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmplan.errors import MmplanError
from mmplan.sandbox import certs, health, maven, outputs, ports, process, state
from mmplan.sandbox import connect as connect_worker
from mmplan.sandbox.java import BROKER_JVM_FLAGS, TOOL_JVM_FLAGS, check_java
from mmplan.sandbox.properties import OFFSETS_PARTITIONS, log4j2_properties, render_properties, server_properties
from mmplan.sandbox.state import SANDBOX_USER, SECURITY_MODES, Cluster, Node, Sandbox

DEFAULT_DIR = ".mmplan/sandbox"
DEFAULT_CLUSTERS = ("us-east", "us-west")
START_TIMEOUT = 120.0
_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")

Progress = Callable[[str], None]


@dataclass
class UpResult:
    """What `up` did: `started` is False when everything was already running."""

    sandbox: Sandbox
    started: bool
    restarted: bool
    files: list[str]


@dataclass
class NodeStatus:
    node: Node
    alive: bool
    rss_kb: int | None
    log: Path


@dataclass
class ClusterStatus:
    cluster: Cluster
    nodes: list[NodeStatus]
    registered: int | None

    @property
    def healthy(self) -> bool:
        return all(n.alive for n in self.nodes) and self.registered == len(self.nodes)


def new_cluster_id() -> str:
    """A Kafka-style cluster id: 22 base64url characters of a random UUID, never starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _check_request(aliases: list[str], brokers: int, security: str) -> None:
    if not aliases:
        raise MmplanError("no cluster aliases given", hint="e.g. --clusters us-east,us-west")
    for a in aliases:
        if not _ALIAS.fullmatch(a):
            raise MmplanError(f"cluster alias {a!r} is not usable: letters, digits, '-' and '_' only")
    if len(set(aliases)) != len(aliases):
        raise MmplanError(f"duplicate cluster alias in {','.join(aliases)}")
    if not 1 <= brokers <= 9:
        raise MmplanError(f"--brokers must be between 1 and 9, not {brokers}")
    if security not in SECURITY_MODES:
        raise MmplanError(f"--security must be one of {', '.join(SECURITY_MODES)}, not {security!r}")


def _mismatch(sb: Sandbox, aliases: list[str] | None, brokers: int | None,
              security: str | None) -> str | None:
    recorded = [c.alias for c in sb.clusters]
    if aliases is not None and aliases != recorded:
        return f"clusters {','.join(recorded)}"
    if brokers is not None and any(len(c.nodes) != brokers for c in sb.clusters):
        return f"{len(sb.clusters[0].nodes)} broker(s) per cluster"
    if security is not None and security != sb.security:
        return f"security {sb.security}"
    return None


def alive_nodes(sb: Sandbox) -> list[tuple[Cluster, Node]]:
    """The nodes whose recorded process is still running."""
    return [(c, n) for c in sb.clusters for n in c.nodes if process.is_ours(n.pid, sb.node_dir(c, n))]


def up(directory: str | Path = DEFAULT_DIR, aliases: list[str] | None = None, brokers: int | None = None,
       security: str | None = None, base_port: int | None = None, timeout: float = START_TIMEOUT,
       progress: Progress | None = None, overrides: dict[str, str] | None = None,
       connect: bool = False) -> UpResult:
    """Start one KRaft cluster per alias in `directory` and wait until all brokers are registered.

    Options left as None take the recorded values when a sandbox already exists in `directory`
    (running: nothing is done; stopped with `down --keep`: it is restarted on the same ports),
    else the defaults (us-east,us-west; 1 broker; plaintext). `overrides` are extra broker
    properties for a new sandbox (e.g. {"auto.create.topics.enable": "false"}). `connect` also starts a
    Kafka Connect worker (kept in the state, restarted with the clusters, stopped by `down`).
    """
    say = progress or (lambda _msg: None)
    directory = Path(directory).resolve()
    existing = state.load(directory)
    if existing is not None:
        differs = _mismatch(existing, aliases, brokers, security)
        running = alive_nodes(existing)
        total = sum(len(c.nodes) for c in existing.clusters)
        if differs:
            what = "running" if running else "stopped (kept)"
            raise MmplanError(f"a sandbox with {differs} is {what} in {directory}",
                              hint=f"run `mmplan sandbox down --dir {directory}` first, or use another --dir")
        if len(running) == total:
            if connect and not (existing.connect and process.is_ours(existing.connect.pid, existing.connect_dir)):
                connect_worker.start(existing, timeout, say)
                return UpResult(existing, started=True, restarted=False, files=outputs.write(existing))
            return UpResult(existing, started=False, restarted=False, files=[])
        if running:
            raise MmplanError(f"the sandbox in {directory} is partly running "
                              f"({len(running)} of {total} nodes)",
                              hint=f"run `mmplan sandbox down --dir {directory}` and `up` again")
        say(f"restarting the stopped sandbox in {directory}")
        _start_and_wait(existing, timeout, say, restart=True)
        if connect or existing.connect is not None:
            connect_worker.start(existing, timeout, say)
        return UpResult(existing, started=True, restarted=True, files=outputs.write(existing))

    aliases = list(aliases or DEFAULT_CLUSTERS)
    brokers = brokers or 1
    security = security or "plaintext"
    _check_request(aliases, brokers, security)
    java = check_java()
    if not maven.is_resolved():
        say(f"resolving Kafka {maven.KAFKA_VERSION} jars with Maven into {maven.lib_dir().parent} (once)")
    cp = maven.classpath()
    password = secrets.token_urlsafe(18) if security != "plaintext" else None
    attempt = 1
    while True:
        try:
            sb = _create(directory, aliases, brokers, security, password, base_port, overrides or {}, java, cp,
                         timeout, say, certificates=attempt == 1)
            if connect:
                try:
                    connect_worker.start(sb, timeout, say)
                except BaseException:
                    _stop(sb, timeout=10)
                    state.state_path(sb.dir).unlink(missing_ok=True)
                    raise
            return UpResult(sb, started=True, restarted=False, files=outputs.write(sb))
        except ports.PortInUse:  # taken by another process since allocation
            if base_port is not None or attempt == _PORT_ATTEMPTS:
                raise
            attempt += 1
            say("another process took one of the chosen ports; trying again with new ports")


_PORT_ATTEMPTS = 3


def _create(directory: Path, aliases: list[str], brokers: int, security: str, password: str | None,
            base_port: int | None, overrides: dict[str, str], java: str, cp: str, timeout: float,
            say: Progress, certificates: bool) -> Sandbox:
    """Allocate ports, write configs (and certificates), format storage, start and wait."""
    free = iter(ports.allocate(len(aliases) * (2 * brokers + 1), base_port))
    clusters = []
    for alias in aliases:
        nodes = [Node(node_id=i, port=next(free), internal_port=next(free),
                      controller_port=next(free) if i == 1 else None) for i in range(1, brokers + 1)]
        clusters.append(Cluster(alias=alias, cluster_id=new_cluster_id(), nodes=nodes))
    sb = Sandbox(dir=directory, kafka_version=maven.KAFKA_VERSION, security=security, password=password,
                 clusters=clusters, overrides=dict(overrides))
    directory.mkdir(parents=True, exist_ok=True)
    if security == "tls" and certificates:
        certs.generate(sb.tls_dir, password)
    _write_node_files(sb)
    say(f"formatting storage of {sum(len(c.nodes) for c in clusters)} node(s)")
    _format(sb, java, cp)
    _start_and_wait(sb, timeout, say)
    return sb


def _write_node_files(sb: Sandbox) -> None:
    for c in sb.clusters:
        for n in c.nodes:
            d = sb.node_dir(c, n)
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            (d / "server.properties").write_text(render_properties(server_properties(sb, c, n)))
            (d / "log4j2.properties").write_text(log4j2_properties(sb.log_file(c, n)))


def _format(sb: Sandbox, java: str, cp: str) -> None:
    extra = []
    if sb.security == "sasl":
        extra = ["--add-scram", f"SCRAM-SHA-512=[name={SANDBOX_USER},password={sb.password}]"]
    procs = []
    for c in sb.clusters:
        for n in c.nodes:
            d = sb.node_dir(c, n)
            argv = [java, *TOOL_JVM_FLAGS, f"-Dlog4j2.configurationFile={d / 'log4j2.properties'}",
                    "-cp", cp, "kafka.tools.StorageTool", "format", "-t", c.cluster_id,
                    "-c", str(d / "server.properties"), *extra]
            procs.append((d, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, text=True)))
    for d, p in procs:
        out, _ = p.communicate(timeout=180)
        if p.returncode != 0:
            text = out.replace(sb.password, "***") if sb.password else out
            raise MmplanError(f"formatting Kafka storage failed (exit {p.returncode}):\n{_tail_text(text)}",
                              where=str(d / "server.properties"))


def _start_and_wait(sb: Sandbox, timeout: float, say: Progress, restart: bool = False) -> None:
    """Start every node, record its pid, and wait for each cluster; on any failure stop them all."""
    ports.check_free([p for c in sb.clusters for n in c.nodes
                      for p in (n.port, n.internal_port, n.controller_port) if p])
    java = check_java()
    cp = maven.classpath()
    try:
        began = {}
        for c in sb.clusters:
            began[c.alias] = time.monotonic()
            for n in c.nodes:
                d = sb.node_dir(c, n)
                argv = [java, *BROKER_JVM_FLAGS, process.MARKER + str(d),
                        f"-Dlog4j2.configurationFile={d / 'log4j2.properties'}",
                        "-cp", cp, "kafka.Kafka", str(d / "server.properties")]
                n.pid = process.start(argv, cwd=d, output=sb.stdout_file(c, n))
                state.save(sb)
        say(f"started {sum(len(c.nodes) for c in sb.clusters)} Kafka process(es); waiting for metadata")
        _wait(sb, began, timeout)
    except BaseException:
        _stop(sb, timeout=10)
        if restart:  # keep the record of a kept sandbox: its data is still there
            state.save(sb)
        else:
            state.state_path(sb.dir).unlink(missing_ok=True)
        raise
    state.save(sb)


def _wait(sb: Sandbox, began: dict[str, float], timeout: float) -> None:
    pending = list(sb.clusters)
    deadline = time.monotonic() + timeout
    groups = health.probe_groups(OFFSETS_PARTITIONS)
    while pending:
        for c in list(pending):
            for n in c.nodes:
                if process.exited(n.pid):
                    error = ports.PortInUse if "Address already in use" in _read_logs(sb, c, n) else MmplanError
                    raise error(f"Kafka node {n.node_id} of cluster {c.alias} exited during start-up; "
                                f"last lines of its log:\n{_log_tail(sb, c, n)}",
                                where=str(sb.log_file(c, n)), hint=f"see also {sb.stdout_file(c, n)}")
            if (health.registered_brokers(sb, c, timeout_ms=3000) == len(c.nodes)
                    and health.group_coordinators_ready(sb, c, groups, timeout_ms=3000)):
                c.startup_seconds = round(time.monotonic() - began[c.alias], 1)
                pending.remove(c)
        if pending and time.monotonic() > deadline:
            c = pending[0]
            raise MmplanError(
                f"cluster {c.alias} did not answer with all {len(c.nodes)} broker(s) within {timeout:.0f}s; "
                f"last lines of node 1's log:\n{_log_tail(sb, c, c.nodes[0])}",
                where=str(sb.log_file(c, c.nodes[0])))
        if pending:
            time.sleep(0.5)


def _tail_text(text: str, lines: int = 15) -> str:
    """The end of a log: from the first ERROR/FATAL among the last 60 lines (stack frames dropped)."""
    all_lines = text.rstrip().splitlines()
    recent = all_lines[-60:]
    first_error = next((i for i, ln in enumerate(recent) if " ERROR " in ln or " FATAL " in ln), None)
    if first_error is None:
        return "\n".join(all_lines[-lines:]) or "(empty)"
    kept = [ln for ln in recent[first_error:] if not ln.lstrip().startswith(("at ", "... "))]
    return "\n".join(kept[:lines])


def _read_logs(sb: Sandbox, c: Cluster, n: Node) -> str:
    """The node's log4j2 log and its JVM output, as far as they exist."""
    files = (sb.log_file(c, n), sb.stdout_file(c, n))
    return "\n".join(f.read_text(errors="replace") for f in files if f.exists())


def _log_tail(sb: Sandbox, c: Cluster, n: Node, lines: int = 15) -> str:
    parts = []
    for f in (sb.log_file(c, n), sb.stdout_file(c, n)):
        if f.exists() and f.stat().st_size:
            parts.append(_tail_text(f.read_text(errors="replace"), lines))
    return "\n".join(parts) or "(no log output)"


def _stop(sb: Sandbox, timeout: float) -> list[int]:
    """Stop the Connect worker, then brokers before controllers so brokers can shut down cleanly; clear the
    recorded pids."""
    stopped = connect_worker.stop(sb, timeout)
    for controllers in (False, True):
        targets = [(n.pid, sb.node_dir(c, n)) for c in sb.clusters for n in c.nodes
                   if n.pid and n.is_controller == controllers]
        stopped += process.stop(targets, timeout=timeout)
    for c in sb.clusters:
        for n in c.nodes:
            n.pid = None
    return stopped


def status(directory: str | Path = DEFAULT_DIR) -> tuple[Sandbox, list[ClusterStatus]]:
    """The recorded sandbox in `directory` with each node's liveness and each cluster's broker count."""
    sb = load(directory)
    result = []
    for c in sb.clusters:
        nodes = []
        for n in c.nodes:
            alive = process.is_ours(n.pid, sb.node_dir(c, n))
            nodes.append(NodeStatus(n, alive, process.rss_kb(n.pid) if alive else None, sb.log_file(c, n)))
        registered = health.registered_brokers(sb, c) if any(s.alive for s in nodes) else None
        result.append(ClusterStatus(c, nodes, registered))
    return sb, result


def load(directory: str | Path = DEFAULT_DIR) -> Sandbox:
    """The sandbox recorded in `directory`; a user-facing error when there is none."""
    sb = state.load(Path(directory).resolve())
    if sb is None:
        raise MmplanError(f"no sandbox in {Path(directory).resolve()}",
                          hint="start one with `mmplan sandbox up` (and pass the same --dir)")
    return sb


def down(directory: str | Path = DEFAULT_DIR, keep: bool = False, timeout: float = 30.0) -> list[int] | None:
    """Stop the processes recorded in `directory` and remove its files unless `keep`.

    Returns the pids that were stopped, or None when there is no sandbox there.
    """
    directory = Path(directory).resolve()
    sb = state.load(directory)
    if sb is None:
        return None
    stopped = _stop(sb, timeout)
    if keep:
        state.save(sb)
        return stopped
    for c in sb.clusters:
        shutil.rmtree(directory / c.alias, ignore_errors=True)
    shutil.rmtree(sb.tls_dir, ignore_errors=True)
    shutil.rmtree(sb.connect_dir, ignore_errors=True)
    for name in (outputs.TOPOLOGY_FILE, outputs.ENV_FILE, state.STATE_FILE):
        (directory / name).unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:
        pass
    return stopped
