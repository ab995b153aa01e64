"""The sandbox's state file: what was started where, so status and down act on exactly that."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "sandbox.json"
HOST = "127.0.0.1"
SECURITY_MODES = ("plaintext", "sasl", "tls")
CLIENT_PROTOCOL = {"plaintext": "PLAINTEXT", "sasl": "SASL_PLAINTEXT", "tls": "SSL"}
SANDBOX_USER = "mmplan"
PASSWORD_VAR = "MMPLAN_SANDBOX_PASSWORD"


@dataclass
class Node:
    """One Kafka process: a combined broker+controller (node 1) or a broker."""

    node_id: int
    port: int
    internal_port: int
    controller_port: int | None = None
    pid: int | None = None

    @property
    def is_controller(self) -> bool:
        return self.controller_port is not None


@dataclass
class Cluster:
    """One KRaft cluster of the sandbox, known by its alias."""

    alias: str
    cluster_id: str
    nodes: list[Node]
    startup_seconds: float | None = None

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated client listener addresses of every broker."""
        return ",".join(f"{HOST}:{n.port}" for n in self.nodes)

    @property
    def controller(self) -> Node:
        return next(n for n in self.nodes if n.is_controller)


@dataclass
class ConnectWorker:
    """A Kafka Connect worker (distributed mode) whose internal topics live on cluster `cluster`."""

    cluster: str
    port: int
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass
class Sandbox:
    """Everything `up` created in one directory."""

    dir: Path
    kafka_version: str
    security: str = "plaintext"
    password: str | None = None
    clusters: list[Cluster] = field(default_factory=list)
    overrides: dict[str, str] = field(default_factory=dict)
    connect: ConnectWorker | None = None

    def cluster(self, alias: str) -> Cluster:
        """The cluster named `alias`; KeyError if there is none."""
        for c in self.clusters:
            if c.alias == alias:
                return c
        raise KeyError(alias)

    def node_dir(self, cluster: Cluster, node: Node) -> Path:
        return self.dir / cluster.alias / f"node-{node.node_id}"

    def log_file(self, cluster: Cluster, node: Node) -> Path:
        """The broker's own log (log4j2), one per node."""
        return self.node_dir(cluster, node) / "server.log"

    def stdout_file(self, cluster: Cluster, node: Node) -> Path:
        """The JVM's stdout/stderr (start-up failures before logging is up land here)."""
        return self.node_dir(cluster, node) / "stdout.log"

    @property
    def connect_dir(self) -> Path:
        return self.dir / "connect"

    @property
    def tls_dir(self) -> Path:
        return self.dir / "tls"

    @property
    def protocol(self) -> str:
        return CLIENT_PROTOCOL[self.security]

    def kafka_config(self, alias: str) -> dict:
        """kafka-python keyword arguments for cluster `alias`: bootstrap servers plus client_config()."""
        return {"bootstrap_servers": self.cluster(alias).bootstrap_servers, **self.client_config()}

    def client_config(self) -> dict:
        """kafka-python keyword arguments (besides bootstrap_servers) for the sandbox's super user."""
        if self.security == "sasl":
            return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_plain_username": SANDBOX_USER, "sasl_plain_password": self.password}
        if self.security == "tls":
            t = self.tls_dir
            return {"security_protocol": "SSL", "ssl_cafile": str(t / "ca.pem"),
                    "ssl_certfile": str(t / "client.pem"), "ssl_keyfile": str(t / "client.key"),
                    "ssl_password": self.password}
        return {"security_protocol": "PLAINTEXT"}


def state_path(directory: Path) -> Path:
    return Path(directory) / STATE_FILE


def save(sb: Sandbox) -> None:
    """Write the state file atomically, readable by the owner only (it holds the sandbox password)."""
    data = asdict(sb)
    data["dir"] = str(sb.dir)
    path = state_path(sb.dir)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def load(directory: Path) -> Sandbox | None:
    """The sandbox recorded in `directory`, or None when there is no state file."""
    path = state_path(directory)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    clusters = [
        Cluster(alias=c["alias"], cluster_id=c["cluster_id"], startup_seconds=c.get("startup_seconds"),
                nodes=[Node(**n) for n in c["nodes"]])
        for c in data["clusters"]
    ]
    return Sandbox(dir=Path(directory).resolve(), kafka_version=data["kafka_version"],
                   security=data["security"], password=data.get("password"), clusters=clusters,
                   overrides=data.get("overrides", {}),
                   connect=ConnectWorker(**data["connect"]) if data.get("connect") else None)
