"""The topology file: models, defaults, merging, and every kind of bad file."""

from __future__ import annotations

import pytest

from mmplan.topology.loader import TopologyError, load_topology, parse_topology
from mmplan.topology.models import format_duration, parse_duration, resolve_flow

MINIMAL = """\
version: 1
clusters:
  us-east: {bootstrap_servers: "e1:9092, e2:9092"}
  us-west: {bootstrap_servers: [w1:9092]}
flows:
  - {source: us-east, target: us-west}
"""


def errors_of(text: str) -> list:
    with pytest.raises(TopologyError) as info:
        parse_topology(text, "t.yaml")
    return info.value.findings


@pytest.mark.parametrize("text, seconds", [("5s", 5), ("10m", 600), ("1h", 3600), ("250ms", 0.25), (30, 30),
                                           ("2d", 172800), (1.5, 1.5), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "5 minutes", True, "-5s", None])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("seconds, text", [(3600, "1h"), (600, "10m"), (5, "5s"), (0.25, "250ms"), (90, "90s")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_minimal_file_gets_mirrormaker2_defaults():
    t = parse_topology(MINIMAL).topology
    assert t.clusters["us-east"].bootstrap_servers == ["e1:9092", "e2:9092"]
    s = resolve_flow(t.defaults, t.flows[0])
    assert s.replication_factor == 2
    assert s.heartbeats.interval == 1 and s.heartbeats.topic == "heartbeats" and s.heartbeats.enabled
    assert s.checkpoints.interval == 60
    assert s.sync_topic_configs.interval == 600 and s.sync_topic_acls.interval == 600
    assert not s.sync_group_offsets.enabled
    assert s.refresh_topics.interval == 60
    assert s.topics.include == [".*"] and "__.*" in s.topics.exclude
    assert "console-consumer-.*" in s.groups.exclude
    assert s.replication_policy.value == "default" and s.separator == "."


def test_flow_overrides_defaults_key_by_key():
    t = parse_topology(MINIMAL.replace("flows:", "defaults:\n  replication_factor: 3\n"
                                       "  heartbeats: {enabled: false, topic: hb}\nflows:")
                       .replace("{source: us-east, target: us-west}",
                                "{source: us-east, target: us-west, heartbeats: {interval: 5s}}")).topology
    s = resolve_flow(t.defaults, t.flows[0])
    assert s.replication_factor == 3
    assert (s.heartbeats.enabled, s.heartbeats.interval, s.heartbeats.topic) == (False, 5, "hb")


def test_lines_are_recorded():
    loaded = parse_topology(MINIMAL)
    assert loaded.lines[("clusters", "us-west")] == 4
    assert loaded.line_of(("flows", 0, "target")) == 6
    assert loaded.line_of(("flows", 0, "nothing", "here")) == 6


def test_unknown_key_says_did_you_mean_with_line():
    [f] = errors_of(MINIMAL + "    replication_factr: 3\n".replace("    ", "  - source: a\n    target: b\n    ", 1))
    assert f.code == "schema" and f.line == 9 and "did you mean 'replication_factor'" in f.message


def test_unknown_nested_key():
    [f] = errors_of(MINIMAL.replace("{source: us-east, target: us-west}",
                                    "{source: us-east, target: us-west, heartbeats: {intervall: 5s}}"))
    assert f.path == "flows[0].heartbeats.intervall" and "'interval'" in f.message


def test_unknown_security_key_names_cluster():
    [f] = errors_of(MINIMAL.replace("[w1:9092]}", "[w1:9092], security: {protocl: SSL}}"))
    assert f.path == "clusters.us-west.security.protocl" and "'protocol'" in f.message and f.line == 4


@pytest.mark.parametrize("text, code, fragment, line", [
    ("version: 1\nclusters: [\n", "parse", "not valid YAML", None),
    ("version: 1\n\tclusters: {}\n", "parse", "not valid YAML", 2),
    ("", "schema", "empty", 1),
    ("# only a comment\n", "schema", "empty", 1),
    ("- a\n- b\n", "schema", "mapping", 1),
    ("just a string", "schema", "mapping", 1),
    ("version: 2\nclusters: {a: {bootstrap_servers: x:1}}\n", "schema", "version: 1", 1),
    ("clusters: {a: {bootstrap_servers: x:1}}\n", "schema", "missing key 'version'", None),
    ("version: 1\nclusters:\n  a: {bootstrap_servers: x:1}\n  a: {bootstrap_servers: y:1}\n", "parse",
     "duplicate key 'a'", 4),
    ("version: 1\nclusters:\n  a: {bootstrap_servers: nohostport}\n", "schema", "host:port", 3),
    ("version: 1\nclusters:\n  a: {bootstrap_servers: x:1, brokers: three}\n", "schema", "integer", 3),
    ("version: 1\nclusters:\n  a: {bootstrap_servers: x:1, brokers: 0}\n", "schema", "greater than", 3),
    ("version: 1\nclusters:\n  a: {bootstrap_servers: []}\n", "schema", "at least 1", 3),
    ("version: 1\nclusters:\n  a: {bootstrap_servers: x:1}\nflows:\n  - {source: a}\n", "schema",
     "missing key 'target'", 5),
    ("version: 1\nclusters:\n  a: {bootstrap_servers: x:1}\nflows: {source: a}\n", "schema", "list", 4),
    ("version: 1\nclusters:\n  a: {bootstrap_servers: x:1}\ndefaults: {heartbeats: {interval: soon}}\n",
     "schema", "not a duration", 4),
    ("version: 1\nclusters:\n  a: {bootstrap_servers: x:1}\ndefaults: {replication_policy: mirror}\n",
     "schema", "'default' or 'identity'", 4),
    ("version: 1\nclusters:\n  a: {bootstrap_servers: x:1, security: {protocol: TLS}}\n", "schema",
     "PLAINTEXT", 3),
    ("version: 1\nclusters:\n  ? [a, b]\n  : {bootstrap_servers: x:1}\n", "parse", "plain name", 3),
])
def test_bad_files(text, code, fragment, line):
    findings = errors_of(text)
    assert findings[0].code == code
    assert any(fragment in f.message for f in findings), [f.message for f in findings]
    if line is not None:
        assert findings[0].line == line


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TopologyError) as info:
        load_topology(tmp_path / "nope.yaml")
    assert info.value.findings[0].code == "file" and "no such file" in info.value.render()
    with pytest.raises(TopologyError) as info:
        load_topology(tmp_path)
    assert "directory" in info.value.render()


def test_binary_file(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TopologyError) as info:
        load_topology(p)
    assert info.value.findings[0].code == "file"


def test_error_render_is_one_screen():
    text = "version: 1\nclusters:\n" + "".join(f"  c{i}: {{bootstrap_servers: bad}}\n" for i in range(40))
    with pytest.raises(TopologyError) as info:
        parse_topology(text, "big.yaml")
    rendered = info.value.render()
    assert len(rendered.splitlines()) <= 20 and "... and 25 more" in rendered
    assert rendered.startswith("error[schema]: big.yaml:3 (clusters.c0.bootstrap_servers)")


def test_secret_reference_is_kept_as_written():
    t = parse_topology(MINIMAL.replace("[w1:9092]}", "[w1:9092], security: {protocol: SASL_SSL, "
                                       "sasl_mechanism: SCRAM-SHA-512, sasl_username: u, "
                                       "sasl_password: '${WEST_PW}'}}")).topology
    assert t.clusters["us-west"].security.sasl_password == "${WEST_PW}"


def test_engine_and_connect_resolve_key_by_key():
    from mmplan.topology.models import Engine, resolve_flow
    t = parse_topology("version: 1\ndefaults: {engine: connect, connect: {urls: ['http://c:8083'], "
                       "password: '${P}', username: u}}\nclusters: {a: {bootstrap_servers: x:1}, "
                       "b: {bootstrap_servers: y:1}}\nflows:\n  - {source: a, target: b, connect: {name_prefix: p-},"
                       " tasks_max: 3}\n  - {source: b, target: a, engine: daemon}\n").topology
    one, two = (resolve_flow(t.defaults, f) for f in t.flows)
    assert one.engine is Engine.connect and one.connect.urls == ["http://c:8083"]
    assert one.connect.name_prefix == "p-" and one.connect.password == "${P}" and one.tasks_max == 3
    assert two.engine is Engine.daemon and two.tasks_max is None
