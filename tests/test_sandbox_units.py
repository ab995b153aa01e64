"""Pure unit tests of mmplan.sandbox: no Java process, no Kafka."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mmplan.cli import main
from mmplan.errors import MmplanError
from mmplan.sandbox import cluster, java, maven, outputs, ports, process, state
from mmplan.sandbox.properties import log4j2_properties, render_properties, server_properties
from mmplan.sandbox.state import Cluster, Node, Sandbox


def _sandbox(tmp_path: Path, security: str = "plaintext", brokers: int = 1, aliases=("us-east", "us-west")):
    clusters = []
    port = 20000
    for a in aliases:
        nodes = []
        for i in range(1, brokers + 1):
            nodes.append(Node(i, port, port + 1, port + 2 if i == 1 else None, pid=None))
            port += 3
        clusters.append(Cluster(a, f"id-{a}", nodes))
    return Sandbox(tmp_path, "4.1.1", security, "s3cret-pw" if security != "plaintext" else None, clusters)


def test_single_node_properties(tmp_path):
    sb = _sandbox(tmp_path)
    c = sb.cluster("us-east")
    p = server_properties(sb, c, c.nodes[0])
    assert p["process.roles"] == "broker,controller"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:20002"
    assert p["listeners"] == "CLIENT://127.0.0.1:20000,INTERNAL://127.0.0.1:20001,CONTROLLER://127.0.0.1:20002"
    assert p["advertised.listeners"] == "CLIENT://127.0.0.1:20000,INTERNAL://127.0.0.1:20001"
    assert p["listener.security.protocol.map"] == "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert p["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert p["super.users"] == "User:ANONYMOUS"
    assert p["allow.everyone.if.no.acl.found"] == "true"
    assert p["offsets.topic.replication.factor"] == "1"
    assert p["transaction.state.log.replication.factor"] == "1"
    assert p["group.initial.rebalance.delay.ms"] == "0"
    assert p["log.dirs"] == str(tmp_path / "us-east" / "node-1" / "data")


def test_three_brokers_share_one_controller(tmp_path):
    sb = _sandbox(tmp_path, brokers=3, aliases=("triple",))
    c = sb.cluster("triple")
    second = server_properties(sb, c, c.nodes[1])
    assert second["process.roles"] == "broker"
    assert "CONTROLLER://" not in second["listeners"]
    assert second["controller.quorum.voters"] == "1@127.0.0.1:20002"
    assert second["offsets.topic.replication.factor"] == "3"
    assert c.bootstrap_servers == "127.0.0.1:20000,127.0.0.1:20003,127.0.0.1:20006"


def test_sasl_and_tls_properties(tmp_path):
    sasl = _sandbox(tmp_path, "sasl")
    c = sasl.clusters[0]
    p = server_properties(sasl, c, c.nodes[0])
    assert p["listener.security.protocol.map"].startswith("CLIENT:SASL_PLAINTEXT,")
    assert p["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "ScramLoginModule required" in p["listener.name.client.scram-sha-512.sasl.jaas.config"]
    assert p["super.users"] == "User:ANONYMOUS;User:mmplan"
    assert "s3cret-pw" not in render_properties(p)

    tls = _sandbox(tmp_path, "tls")
    p = server_properties(tls, tls.clusters[0], tls.clusters[0].nodes[0])
    assert p["listener.security.protocol.map"].startswith("CLIENT:SSL,")
    assert p["listener.name.client.ssl.keystore.type"] == "PEM"
    assert p["listener.name.client.ssl.truststore.location"] == str(tmp_path / "tls" / "ca.pem")
    assert p["listener.name.client.ssl.client.auth"] == "required"


def test_overrides_win_and_rendering(tmp_path):
    sb = _sandbox(tmp_path)
    sb.overrides = {"auto.create.topics.enable": "false", "num.partitions": "3"}
    c = sb.clusters[0]
    text = render_properties(server_properties(sb, c, c.nodes[0]))
    assert "auto.create.topics.enable=false\n" in text and "num.partitions=3\n" in text
    assert "num.partitions=1\n" not in text
    assert render_properties({"a": "C:\\x"}) == "a=C:\\\\x\n"
    assert f"appender.file.fileName = {tmp_path / 'x.log'}" in log4j2_properties(tmp_path / "x.log")


def test_state_round_trip_is_private(tmp_path):
    sb = _sandbox(tmp_path, "sasl", brokers=2)
    sb.clusters[0].nodes[0].pid = 1234
    sb.overrides = {"k": "v"}
    state.save(sb)
    mode = stat.S_IMODE(state.state_path(tmp_path).stat().st_mode)
    assert mode == 0o600
    loaded = state.load(tmp_path)
    assert loaded == sb
    assert state.load(tmp_path / "nowhere") is None


def test_client_config_per_security_mode(tmp_path):
    assert _sandbox(tmp_path).kafka_config("us-west") == {
        "bootstrap_servers": "127.0.0.1:20003", "security_protocol": "PLAINTEXT"}
    sasl = _sandbox(tmp_path, "sasl").client_config()
    assert sasl["sasl_plain_username"] == "mmplan" and sasl["sasl_plain_password"] == "s3cret-pw"
    tls = _sandbox(tmp_path, "tls").client_config()
    assert tls["ssl_cafile"] == str(tmp_path / "tls" / "ca.pem") and tls["ssl_password"] == "s3cret-pw"


@pytest.mark.parametrize("security", ["plaintext", "sasl", "tls"])
def test_topology_and_env_files(tmp_path, security):
    sb = _sandbox(tmp_path, security)
    written = outputs.write(sb)
    text = (tmp_path / "topology.yaml").read_text()
    doc = yaml.safe_load(text)
    assert doc["version"] == 1
    assert doc["flows"] == [{"source": "us-east", "target": "us-west"}]
    assert doc["defaults"] == {"replication_factor": 1}
    east = doc["clusters"]["us-east"]
    assert east["bootstrap_servers"] == ["127.0.0.1:20000"] and east["brokers"] == 1
    assert east["cluster_id"] == "id-us-east"
    if security == "plaintext":
        assert "security" not in east and written == [str(tmp_path / "topology.yaml")]
        return
    assert "s3cret-pw" not in text
    secret = east["security"].get("sasl_password") or east["security"].get("ssl_password")
    assert secret == "${MMPLAN_SANDBOX_PASSWORD}"
    env = tmp_path / "sandbox.env"
    assert env.read_text() == "export MMPLAN_SANDBOX_PASSWORD=s3cret-pw\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_one_cluster_has_no_flow(tmp_path):
    assert outputs.topology(_sandbox(tmp_path, aliases=("solo",)))["flows"] == []


def test_java_version_parsing():
    assert java.parse_java_major('openjdk version "17.0.15" 2025-04-15') == 17
    assert java.parse_java_major('java version "1.8.0_392"') == 8
    assert java.parse_java_major('openjdk version "21" 2023-09-19') == 21
    assert java.parse_java_major("garbage") is None


def _fake_tool(directory: Path, name: str, script: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_no_java_and_old_java(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MmplanError, match="no Java runtime found"):
        java.check_java()
    _fake_tool(tmp_path / "jdk11" / "bin", "java", "echo 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk11"))
    with pytest.raises(MmplanError, match="Java 17 or newer") as err:
        java.check_java()
    assert "11.0.2" in err.value.message


def test_no_maven_and_failing_maven(tmp_path, monkeypatch):
    monkeypatch.setenv("MMPLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert not maven.is_resolved()
    with pytest.raises(MmplanError, match="Maven"):
        maven.resolve()
    _fake_tool(tmp_path / "bin", "mvn",
               "i=1; while [ $i -le 20 ]; do echo \"[INFO] line $i\"; i=$((i+1)); done\n"
               "echo '[ERROR] Could not resolve org.apache.kafka:kafka_2.13'\nexit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(MmplanError) as err:
        maven.resolve()
    assert "could not resolve Kafka 4.1.1" in err.value.message
    assert "[ERROR] Could not resolve org.apache.kafka:kafka_2.13" in err.value.message
    assert "[INFO] line 20" in err.value.message and "line 1\n" not in err.value.message  # the last lines
    assert "Maven Central" in err.value.hint
    assert not maven.is_resolved()


def test_pom_pins_one_version():
    pom = maven.render_pom()
    for artifact in ("kafka_2.13", "kafka-tools", "connect-mirror", "connect-runtime", "log4j-slf4j-impl"):
        assert f"<artifactId>{artifact}</artifactId>" in pom
    assert pom.count(f"<version>{maven.KAFKA_VERSION}</version>") == 5


def test_ports(tmp_path):
    got = ports.allocate(5)
    assert len(set(got)) == 5
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert not ports.port_free(busy)
        with pytest.raises(MmplanError, match=f"port {busy} on 127.0.0.1 is already in use"):
            ports.allocate(3, base_port=busy - 1)
    with pytest.raises(MmplanError, match="no room"):
        ports.allocate(3, base_port=65534)


@pytest.mark.parametrize(("aliases", "brokers", "security", "message"), [
    ([], 1, "plaintext", "no cluster aliases"),
    (["us east"], 1, "plaintext", "not usable"),
    (["a", "a"], 1, "plaintext", "duplicate"),
    (["a"], 0, "plaintext", "--brokers"),
    (["a"], 1, "kerberos", "--security"),
])
def test_bad_requests(aliases, brokers, security, message):
    with pytest.raises(MmplanError, match=message):
        cluster._check_request(aliases, brokers, security)


def test_cluster_ids_and_log_tails():
    for _ in range(200):
        cid = cluster.new_cluster_id()
        assert len(cid) == 22 and not cid.startswith("-")
    log = "\n".join([f"INFO line {i}" for i in range(100)] + [
        "[x] ERROR Encountered fatal fault (Handler)", "java.lang.Boom: bad", "\tat a.b(C.java:1)",
        "\t... 3 more", "[y] INFO shutting down"])
    assert cluster._tail_text(log) == \
        "[x] ERROR Encountered fatal fault (Handler)\njava.lang.Boom: bad\n[y] INFO shutting down"
    assert cluster._tail_text("a\nb\nc", lines=2) == "b\nc"


def test_pids_that_are_not_ours_are_never_touched(tmp_path):
    assert not process.is_ours(None, tmp_path)
    assert not process.is_ours(os.getpid(), tmp_path)
    assert process.stop([(os.getpid(), tmp_path)], timeout=1) == []


def test_cli_without_a_sandbox(tmp_path):
    runner = CliRunner()
    down = runner.invoke(main, ["sandbox", "down", "--dir", str(tmp_path / "none")])
    assert down.exit_code == 0 and "nothing to stop" in down.output
    status = runner.invoke(main, ["sandbox", "status", "--dir", str(tmp_path / "none")])
    assert status.exit_code == 1
    assert "error: no sandbox in" in status.output and "Traceback" not in status.output
    bad = runner.invoke(main, ["sandbox", "up", "--security", "nope", "--dir", str(tmp_path)])
    assert bad.exit_code == 1


@pytest.mark.parametrize("security", ["plaintext", "sasl", "tls"])
def test_written_topology_validates_clean(tmp_path, security):
    outputs.write(_sandbox(tmp_path, security))
    result = CliRunner().invoke(main, ["validate", "--format", "json", str(tmp_path / "topology.yaml")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["valid"] is True and report["findings"] == []


def test_group_partitions_follow_java_string_hashcode():
    from mmplan.sandbox.health import _partition_for, probe_groups

    assert _partition_for("test", 8) == 3556498 % 8
    assert _partition_for("hello", 50) == 99162322 % 50
    assert _partition_for("polygenelubricants", 8) == 0  # hashCode is Integer.MIN_VALUE
    groups = probe_groups(8)
    assert sorted(_partition_for(g, 8) for g in groups) == list(range(8))
