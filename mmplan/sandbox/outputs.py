"""The files `up` writes for the user: `<dir>/topology.yaml` and, with a password, `<dir>/sandbox.env`."""

from __future__ import annotations

import os
import shlex

import yaml

from mmplan.sandbox.state import PASSWORD_VAR, SANDBOX_USER, Sandbox

TOPOLOGY_FILE = "topology.yaml"
ENV_FILE = "sandbox.env"


def security_block(sb: Sandbox) -> dict | None:
    """The topology `security:` settings of the sandbox's clusters; secrets as `${VAR}` references."""
    if sb.security == "sasl":
        return {"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": SANDBOX_USER, "sasl_password": f"${{{PASSWORD_VAR}}}"}
    if sb.security == "tls":
        t = sb.tls_dir
        return {"protocol": "SSL", "ssl_cafile": str(t / "ca.pem"), "ssl_certfile": str(t / "client.pem"),
                "ssl_keyfile": str(t / "client.key"), "ssl_password": f"${{{PASSWORD_VAR}}}"}
    return None


def topology(sb: Sandbox) -> dict:
    """A topology (version 1) whose clusters are the sandbox's, with a flow from the first to the second."""
    clusters = {}
    for c in sb.clusters:
        entry: dict = {"bootstrap_servers": [f"127.0.0.1:{n.port}" for n in c.nodes],
                       "brokers": len(c.nodes), "cluster_id": c.cluster_id}
        sec = security_block(sb)
        if sec:
            entry["security"] = sec
        clusters[c.alias] = entry
    rf = min(len(c.nodes) for c in sb.clusters)
    flows = []
    if len(sb.clusters) >= 2:
        flows.append({"source": sb.clusters[0].alias, "target": sb.clusters[1].alias})
        if sb.connect is not None:  # the flow runs as MirrorMaker 2 connectors on the sandbox's worker
            flows[0].update({"engine": "connect", "connect": {"urls": [sb.connect.url]}})
    return {"version": 1, "defaults": {"replication_factor": rf}, "clusters": clusters, "flows": flows}


def write(sb: Sandbox) -> list[str]:
    """Write topology.yaml (and sandbox.env when there is a password); return the paths written."""
    header = (f"# Written by `mmplan sandbox up` for the sandbox in {sb.dir}.\n"
              f"# Kafka {sb.kafka_version}, security: {sb.security}.\n")
    if sb.password:
        header += f"# Secrets come from the environment: source {sb.dir / ENV_FILE} first.\n"
    path = sb.dir / TOPOLOGY_FILE
    path.write_text(header + yaml.safe_dump(topology(sb), sort_keys=False, default_flow_style=False))
    written = [str(path)]
    env = sb.dir / ENV_FILE
    if sb.password:
        fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"export {PASSWORD_VAR}={shlex.quote(sb.password)}\n")
        written.append(str(env))
    elif env.exists():
        env.unlink()
    return written
