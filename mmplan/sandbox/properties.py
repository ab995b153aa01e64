"""Render each node's server.properties and log4j2 configuration."""

from __future__ import annotations

from pathlib import Path

from mmplan.sandbox.state import HOST, SANDBOX_USER, Cluster, Node, Sandbox

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
OFFSETS_PARTITIONS = 8  # __consumer_offsets partitions (Kafka's 50 make the first group use slow)


def server_properties(sb: Sandbox, cluster: Cluster, node: Node) -> dict[str, str]:
    """The broker configuration of `node`.

    Three listeners: CLIENT (the sandbox's security mode) for clients, INTERNAL (plaintext) between
    brokers, and CONTROLLER on node 1, the cluster's only controller. The sandbox's overrides win.
    """
    ctrl = cluster.controller
    n = len(cluster.nodes)
    internal_rf = str(min(n, 3))
    listeners = [f"CLIENT://{HOST}:{node.port}", f"INTERNAL://{HOST}:{node.internal_port}"]
    if node.is_controller:
        listeners.append(f"CONTROLLER://{HOST}:{node.controller_port}")
    supers = "User:ANONYMOUS" if sb.security == "plaintext" else f"User:ANONYMOUS;User:{SANDBOX_USER}"
    props = {
        "process.roles": "broker,controller" if node.is_controller else "broker",
        "node.id": str(node.node_id),
        "controller.quorum.voters": f"{ctrl.node_id}@{HOST}:{ctrl.controller_port}",
        "controller.listener.names": "CONTROLLER",
        "listeners": ",".join(listeners),
        "advertised.listeners": f"CLIENT://{HOST}:{node.port},INTERNAL://{HOST}:{node.internal_port}",
        "listener.security.protocol.map": f"CLIENT:{sb.protocol},INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "log.dirs": str(sb.node_dir(cluster, node) / "data"),
        "authorizer.class.name": AUTHORIZER,
        # Brokers and the controller talk over plaintext listeners as ANONYMOUS.
        "super.users": supers,
        "allow.everyone.if.no.acl.found": "true",
        "offsets.topic.replication.factor": internal_rf,
        "offsets.topic.num.partitions": str(OFFSETS_PARTITIONS),
        "transaction.state.log.replication.factor": internal_rf,
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "8",
        "share.coordinator.state.topic.replication.factor": internal_rf,
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        "num.partitions": "1",
        "default.replication.factor": "1",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "background.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
    }
    if sb.security == "sasl":
        props["sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
        props["listener.name.client.scram-sha-512.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;")
    elif sb.security == "tls":
        t = sb.tls_dir
        prefix = "listener.name.client."
        props.update({
            prefix + "ssl.keystore.type": "PEM",
            prefix + "ssl.keystore.location": str(t / "broker.pem"),
            prefix + "ssl.truststore.type": "PEM",
            prefix + "ssl.truststore.location": str(t / "ca.pem"),
            prefix + "ssl.client.auth": "required",
            # The client certificate's subject is CN=mmplan: the principal becomes User:mmplan.
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
        })
    props.update(sb.overrides)
    return props


def render_properties(props: dict[str, str]) -> str:
    """Java properties text; values here never need escaping beyond backslashes."""
    return "".join(f"{k}={v.replace(chr(92), chr(92) * 2)}\n" for k, v in props.items())


def log4j2_properties(log_file: Path, level: str = "INFO") -> str:
    """A log4j2 configuration sending a Kafka process's log (a broker, Connect, MirrorMaker 2) to one file."""
    return f"""status = warn
name = mmplan-sandbox
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = WARN
"""
