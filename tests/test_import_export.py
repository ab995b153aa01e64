"""mm2.properties import and export: the seed's files import into valid topologies, and every example
survives export then import (compared as compiled, resolved models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmplan.cli import main
from mmplan.cli.export import export
from mmplan.cli.import_ import import_
from mmplan.graph.checks import check_topology
from mmplan.graph.compile import compile_topology
from mmplan.mm2.connectors import flow_connectors
from mmplan.mm2.export import export_properties
from mmplan.mm2.import_ import import_connectors, import_properties, prune_defaults, topology_yaml
from mmplan.mm2.properties import parse
from mmplan.topology.findings import has_errors
from mmplan.topology.loader import load_topology, parse_topology
from mmplan.topology.models import Topology

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted(ROOT.joinpath("examples").glob("*.yaml"))
SEEDS = sorted(ROOT.joinpath("tests", "data").glob("seed-*.mm2.properties"))

for command in (import_, export):
    if command.name not in main.commands:
        main.add_command(command)

EXTRA = """\
version: 1
defaults:
  engine: connect
  connect: {urls: ['http://c1:8083', 'http://c2:8083'], username: admin, password: '${CONNECT_PW}'}
  heartbeats: {interval: 250ms}
  exactly_once: true
clusters:
  a:
    bootstrap_servers: a:9092
    security: {protocol: SASL_SSL, sasl_mechanism: PLAIN, sasl_username: u, sasl_password: '${A_PW}',
               ssl_cafile: /ca.pem, ssl_certfile: /c/both.pem, ssl_keyfile: /c/both.pem, ssl_password: '${A_KEY}',
               ssl_check_hostname: false}
  b:
    bootstrap_servers: [b1:9092, b2:9092]
    security: {protocol: SSL, ssl_certfile: /certs/c.pem, ssl_keyfile: /keys/k.pem}
flows:
  - source: a
    target: b
    tasks_max: 4
    connect: {name_prefix: 'mm2-'}
    topics: {include: ['orders,v1', 'x'], exclude: []}
    sync_topic_configs: {exclude: ['retention\\.ms']}
    separator: _
    replication_policy: identity
    rpo: 10s
    checkpoints: {interval: 1500ms}
  - {source: b, target: a, engine: daemon, heartbeats: {topic: hb}, enabled: false, allow_delete: true}
"""


def resolved(topology: Topology) -> tuple:
    compiled = compile_topology(topology)
    return (topology.clusters, topology.defaults,
            [(f.source, f.target, f.settings) for f in compiled.flows])


def round_trip(topology: Topology) -> Topology:
    text = export_properties(topology).text
    return parse_topology(topology_yaml(prune_defaults(import_properties(text).data))).topology


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_round_trip(path):
    topology = load_topology(path).topology
    assert resolved(round_trip(topology)) == resolved(topology)


def test_every_field_round_trips():
    topology = parse_topology(EXTRA).topology
    back = round_trip(topology)
    assert resolved(back) == resolved(topology)
    assert back.flows[0].connect.name_prefix == "mm2-"


def test_export_uses_env_references_and_declares_the_providers():
    text = export_properties(parse_topology(EXTRA).topology).text
    props = parse(text).values
    assert 'password="${env:A_PW}"' in props["a.sasl.jaas.config"]
    assert "PlainLoginModule" in props["a.sasl.jaas.config"]
    assert props["a.ssl.key.password"] == "${env:A_KEY}"
    assert props["config.providers"] == "env, dir"
    assert props["config.providers.env.class"] == "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
    assert props["b.ssl.keystore.key"] == "${dir:/keys:k.pem}"
    assert props["a.ssl.endpoint.identification.algorithm"] == ""
    assert props["a->b.replication.policy.class"].endswith("IdentityReplicationPolicy")
    assert props["a->b.tasks.max"] == "4" and props["b->a.enabled"] == "false"


def test_export_lists_what_only_the_block_keeps():
    exported = export_properties(parse_topology(EXTRA).topology)
    assert "# mmplan:" in exported.text
    assert "flow a->b: rpo" in exported.notes and "flow b->a: heartbeats" in exported.notes
    assert "defaults: engine" in exported.notes


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
def test_seed_files_import_into_valid_topologies(path):
    imported = import_properties(path.read_text())
    loaded = parse_topology(topology_yaml(prune_defaults(imported.data)), path.name)
    assert not has_errors(check_topology(loaded))
    t = loaded.topology
    assert list(t.clusters) == ["us-east", "us-west"]
    assert t.clusters["us-west"].bootstrap_servers == ["kafka-west-1:9092", "kafka-west-2:9092", "kafka-west-3:9092"]
    flow = compile_topology(t).flows[0]
    s = flow.settings
    assert (flow.source, flow.target, s.enabled, s.replication_factor) == ("us-east", "us-west", True, 3)
    assert s.topics.exclude == [".*.internal", ".*-changelog", "connect-.*", "__.*"]  # as Java reads `\.`
    assert s.sync_group_offsets.enabled and s.sync_group_offsets.interval == 60
    assert s.heartbeats.interval == 5 and s.checkpoints.interval == 60
    assert s.refresh_topics.interval == 600  # MirrorMaker 2's default, kept
    assert "min\\.insync\\.replicas" in s.sync_topic_configs.exclude
    notes = "\n".join(imported.notes)
    assert "topics.blacklist" in notes and "offset.storage.replication.factor" in notes
    assert "Java reads \\." in notes


def test_active_passive_seed_keeps_the_reverse_flow_disabled():
    t = parse_topology(topology_yaml(import_properties(SEEDS[1].read_text()).data)).topology
    assert [(f.source, f.target, f.enabled) for f in t.flows] == [("us-east", "us-west", True),
                                                                  ("us-west", "us-east", False)]


def test_import_security_and_unexpressible_settings():
    text = """\
clusters = east, west
east.bootstrap.servers = e:9092
west.bootstrap.servers = w:9092
east.security.protocol = SASL_SSL
east.sasl.mechanism = SCRAM-SHA-512
east.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule required \\
    username="mm2" password="s3cret";
east.ssl.truststore.location = /etc/kafka/truststore.jks
east.ssl.truststore.password = changeit
west.security.protocol = SSL
west.ssl.truststore.type = PEM
west.ssl.truststore.location = /ca.pem
west.ssl.key.password = ${env:WEST_KEY}
west.producer.batch.size = 65536
east->west.enabled = true
east->west.tasks.max = 4
east->west.offset.lag.max = 50
replication.policy.class = com.example.MyPolicy
refresh.topics.interval.seconds = 30
"""
    imported = import_properties(text)
    notes = "\n".join(imported.notes)
    assert "s3cret" not in notes and "s3cret" not in json.dumps(imported.data)
    east = imported.data["clusters"]["east"]["security"]
    assert east == {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "mm2",
                    "sasl_password": "${EAST_SASL_PASSWORD}"}
    assert imported.data["clusters"]["west"]["security"] == {"protocol": "SSL", "ssl_cafile": "/ca.pem",
                                                             "ssl_password": "${WEST_KEY}"}
    for fragment in ("set EAST_SASL_PASSWORD", "JKS truststore", "ssl.truststore.password",
                     "west.producer.batch.size", "offset.lag.max", "com.example.MyPolicy", "tasks.max=4"):
        assert fragment in notes
    assert "tasks_max" not in imported.data["flows"][0]


def test_cli_import_writes_a_file_and_lists_notes(tmp_path):
    out = tmp_path / "mmplan.yaml"
    result = CliRunner().invoke(main, ["import", str(SEEDS[0]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "warning: " in result.stderr and "topics.blacklist" in result.stderr
    assert not has_errors(check_topology(load_topology(out)))


def test_cli_import_of_an_invalid_result_exits_1(tmp_path):
    path = tmp_path / "mm2.properties"
    path.write_text("clusters = a, b\na.bootstrap.servers = a:1\nb.bootstrap.servers = b:1\na->b.enabled = true\n"
                    "a->b.topics = [unclosed\n")
    result = CliRunner().invoke(main, ["import", str(path)])
    assert result.exit_code == 1 and "bad-regex" in result.stderr


def test_cli_export_both_formats(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(EXTRA)
    result = CliRunner().invoke(main, ["export", str(path)])
    assert result.exit_code == 0 and "a->b.enabled = true" in result.stdout and "note: " in result.stderr
    result = CliRunner().invoke(main, ["export", str(path), "--format", "connect-json"])
    assert result.exit_code == 0
    names = [c["name"] for c in json.loads(result.stdout)]
    assert names == ["mm2-a->b-source", "mm2-a->b-checkpoint", "mm2-a->b-heartbeat"]  # b->a is disabled


def test_connector_configs():
    topology = parse_topology(EXTRA).topology
    flow = compile_topology(topology).flows[0]
    configs = flow_connectors(topology, flow, env={})
    source = configs["mm2-a->b-source"]
    assert source["connector.class"] == "org.apache.kafka.connect.mirror.MirrorSourceConnector"
    assert source["source.cluster.alias"] == "a" and source["target.cluster.bootstrap.servers"] == "b1:9092,b2:9092"
    assert source["producer.override.bootstrap.servers"] == "b1:9092,b2:9092"
    assert 'password="${env:A_PW}"' in source["source.cluster.sasl.jaas.config"]
    assert source["tasks.max"] == "4" and source["topics"] == "orders,v1, x"
    assert source["value.converter"].endswith("ByteArrayConverter")
    assert source["exactly.once.support"] == "required"
    heartbeat = configs["mm2-a->b-heartbeat"]
    assert heartbeat["producer.override.bootstrap.servers"] == "a:9092"  # heartbeats are written at the source
    assert heartbeat["tasks.max"] == "1"


def test_connector_configs_with_resolved_secrets():
    text = EXTRA.replace("connect: {name_prefix: 'mm2-'}", "connect: {name_prefix: 'mm2-', resolve_secrets: true}")
    topology = parse_topology(text).topology
    flow = compile_topology(topology).flows[0]
    configs = flow_connectors(topology, flow, env={"A_PW": "pw", "A_KEY": "key"})
    assert 'password="pw"' in configs["mm2-a->b-source"]["source.cluster.sasl.jaas.config"]
    with pytest.raises(Exception, match="A_PW"):
        flow_connectors(topology, flow, env={})


def test_import_from_connectors_round_trips_the_connector_settings():
    topology = parse_topology(EXTRA).topology
    compiled = compile_topology(topology)
    connectors = {**flow_connectors(topology, compiled.flows[0], env={}),
                  "jdbc": {"connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector"}}
    imported = import_connectors(connectors, "http://c1:8083")
    back = compile_topology(parse_topology(topology_yaml(prune_defaults(imported.data))).topology)
    [flow] = back.flows
    assert (flow.source, flow.target) == ("a", "b")
    s, want = flow.settings, compiled.flows[0].settings
    assert s.engine.value == "connect" and s.connect.urls == ["http://c1:8083"] and s.connect.name_prefix == "mm2-"
    assert (s.tasks_max, s.separator, s.replication_policy) == (4, "_", want.replication_policy)
    assert s.topics.include == ["orders", "v1", "x"]  # MirrorMaker 2 splits its lists on commas
    assert s.sync_topic_configs.exclude == want.sync_topic_configs.exclude
    assert back.topology.clusters["a"].security.sasl_password == "${A_PW}"
    assert back.topology.clusters["b"].bootstrap_servers == ["b1:9092", "b2:9092"]
    assert not has_errors(check_topology(parse_topology(topology_yaml(imported.data))))
