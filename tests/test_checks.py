"""The offline checks, each code on topologies that should and should not trip it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmplan.graph.checks import check_topology
from mmplan.topology.loader import load_topology, parse_topology

EXAMPLES = sorted(Path(__file__).parent.parent.joinpath("examples").glob("*.yaml"))


def findings(text: str) -> list:
    return check_topology(parse_topology(text, "t.yaml"))


def codes(text: str) -> list[str]:
    return [f.code for f in findings(text)]


def topology(flows: str, clusters: str = "", defaults: str = "") -> str:
    clusters = clusters or ("  us-east: {bootstrap_servers: e:9092, brokers: 3}\n"
                            "  us-west: {bootstrap_servers: w:9092, brokers: 3}\n")
    return f"version: 1\n{defaults}clusters:\n{clusters}flows:\n{flows}"


AP = "  - {source: us-east, target: us-west}\n"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_clean(path):
    assert check_topology(load_topology(path)) == []


def test_examples_carry_schema_line():
    for path in EXAMPLES:
        assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/topology.v1.json\n")


def test_there_are_examples():
    names = {p.stem for p in EXAMPLES}
    assert {"active-passive", "active-active", "identity-dr", "hub-and-spoke", "three-region-ring"} <= names


def test_sound_active_passive_has_no_findings():
    assert codes(topology(AP)) == []


def test_seed_pitfall_1_identity_both_ways_is_a_cycle():
    fs = findings(topology("  - {source: us-east, target: us-west}\n  - {source: us-west, target: us-east}\n",
                           defaults="defaults: {replication_policy: identity}\n"))
    [cycle] = [f for f in fs if f.code == "cycle"]
    assert cycle.severity == "error" and "us-east -> us-west -> us-east" in cycle.message
    assert cycle.line == 7


def test_seed_pitfall_4_no_heartbeats():
    [f] = findings(topology("  - {source: us-east, target: us-west, heartbeats: {enabled: false}}\n"))
    assert (f.code, f.severity, f.line) == ("no-heartbeats", "warning", 6)


def test_no_heartbeats_not_reported_for_disabled_flow():
    assert codes(topology("  - {source: us-east, target: us-west, enabled: false, heartbeats: {enabled: false}}\n"))\
        == []


def test_seed_pitfall_6_replication_factor_above_brokers():
    fs = findings(topology(AP, defaults="defaults:\n  replication_factor: 3\n",
                           clusters="  us-east: {bootstrap_servers: e:9092, brokers: 3}\n"
                                    "  us-west: {bootstrap_servers: w:9092, brokers: 1}\n"))
    [f] = fs
    assert f.code == "replication-factor" and "exceeds the 1 broker(s) of us-west" in f.message
    assert f.path == "defaults.replication_factor" and f.line == 3


def test_replication_factor_also_covers_source_internal_topics():
    [f] = findings(topology(AP, clusters="  us-east: {bootstrap_servers: e:9092, brokers: 1}\n"
                                         "  us-west: {bootstrap_servers: w:9092, brokers: 3}\n"))
    assert f.code == "replication-factor" and "us-east" in f.message and "offset-syncs" in f.message


def test_unknown_brokers_warning_once_per_target():
    fs = findings(topology(AP, clusters="  us-east: {bootstrap_servers: e:9092}\n"
                                        "  us-west: {bootstrap_servers: w:9092}\n"))
    assert [(f.code, f.severity, f.path) for f in fs] == [("unknown-brokers", "warning", "clusters.us-west")]


def test_unknown_cluster_self_and_duplicate_flows():
    fs = findings(topology("  - {source: us-east, target: eu}\n  - {source: us-west, target: us-west}\n"
                           "  - {source: us-east, target: us-west}\n  - {source: us-east, target: us-west}\n"))
    assert [f.code for f in fs] == ["unknown-cluster", "self-flow", "duplicate-flow"]
    assert "'eu' is not a declared cluster" in fs[0].message and fs[0].line == 6
    assert fs[2].line == 9 and "first at flows[2]" in fs[2].message


def test_bad_regex_reported_where_written():
    fs = findings(topology("  - {source: us-east, target: us-west, topics: {include: ['orders(']}}\n",
                           defaults="defaults: {groups: {exclude: ['[x']}}\n"))
    assert [(f.code, f.path) for f in fs] == [("bad-regex", "defaults.groups.exclude[0]"),
                                              ("bad-regex", "flows[0].topics.include[0]")]


def test_alias_containing_separator():
    fs = findings(topology("  - {source: us.east, target: us-west}\n",
                           clusters="  us.east: {bootstrap_servers: e:9092, brokers: 3}\n"
                                    "  us-west: {bootstrap_servers: w:9092, brokers: 3}\n"))
    assert [f.code for f in fs] == ["alias-separator"] and fs[0].path == "clusters.us.east"


def test_alias_fine_with_other_separator():
    assert codes(topology("  - {source: us.east, target: us-west, separator: _}\n",
                          clusters="  us.east: {bootstrap_servers: e:9092, brokers: 3}\n"
                                   "  us-west: {bootstrap_servers: w:9092, brokers: 3}\n")) == []


def test_alias_not_legal_in_topic_names():
    assert "bad-name" in codes(topology("  - {source: 'us east', target: us-west}\n",
                                        clusters="  us east: {bootstrap_servers: e:9092, brokers: 3}\n"
                                                 "  us-west: {bootstrap_servers: w:9092, brokers: 3}\n"))


def test_remote_name_too_long():
    name = "t" * 245
    fs = findings(topology(f"  - {{source: us-east, target: us-west, topics: {{include: ['{name}']}}}}\n"))
    assert [f.code for f in fs] == ["bad-name"] and "253 characters" in fs[0].message
    assert codes(topology("  - {source: us-east, target: us-west, topics: {include: ['t{245}']}}\n")) == []


def test_identity_flows_into_one_cluster_collide():
    clusters = "".join(f"  {a}: {{bootstrap_servers: {a}:9092, brokers: 3}}\n" for a in ("a", "b", "c"))
    fs = findings(topology("  - {source: a, target: c}\n  - {source: b, target: c}\n", clusters=clusters,
                           defaults="defaults: {replication_policy: identity}\n"))
    assert [f.code for f in fs] == ["topic-collision"]
    assert codes(topology("  - {source: a, target: c}\n  - {source: b, target: c}\n", clusters=clusters)) == []


@pytest.mark.parametrize("flow, fragment", [
    ("{source: us-east, target: us-west, rpo: 30s}", "checkpoints run every 1m"),
    ("{source: us-east, target: us-west, rpo: 30s, checkpoints: {enabled: false}}", "checkpoints are disabled"),
    ("{source: us-east, target: us-west, rpo: 2m, heartbeats: {interval: 5m}}", "heartbeats run every 5m"),
])
def test_rpo(flow, fragment):
    fs = [f for f in findings(topology(f"  - {flow}\n")) if f.code == "rpo"]
    assert len(fs) == 1 and fragment in fs[0].message and fs[0].severity == "error"


def test_rpo_met():
    assert codes(topology("  - {source: us-east, target: us-west, rpo: 30s, checkpoints: {interval: 15s}}\n")) == []


def test_plaintext_secret():
    clusters = ("  us-east: {bootstrap_servers: e:9092, brokers: 3, security: {protocol: SASL_PLAINTEXT, "
                "sasl_mechanism: PLAIN, sasl_username: u, sasl_password: hunter2}}\n"
                "  us-west: {bootstrap_servers: w:9092, brokers: 3, security: {protocol: SSL, "
                "ssl_password: '${WEST_KEY}'}}\n")
    fs = findings(topology(AP, clusters=clusters))
    assert [(f.code, f.path) for f in fs] == [("plaintext-secret", "clusters.us-east.security.sasl_password")]
    assert "hunter2" not in fs[0].message


CONNECT = "engine: connect, connect: {urls: ['http://connect-1:8083']}"


def test_connect_flow_is_sound():
    assert codes(topology(f"  - {{source: us-east, target: us-west, {CONNECT}, tasks_max: 4}}\n")) == []


def test_connect_settings_merge_from_defaults():
    text = topology("  - {source: us-east, target: us-west, connect: {name_prefix: 'mm2-'}}\n",
                    defaults=f"defaults: {{{CONNECT}}}\n")
    assert codes(text) == []


def test_connect_flow_without_urls():
    [f] = findings(topology("  - {source: us-east, target: us-west, engine: connect}\n"))
    assert (f.code, f.severity, f.path) == ("connect-urls", "error", "flows[0].engine")


def test_connect_url_must_be_http():
    fs = findings(topology("  - {source: us-east, target: us-west, engine: connect, connect: {urls: [w:8083]}}\n"))
    assert [(f.code, f.path) for f in fs] == [("connect-urls", "flows[0].connect.urls[0]")]


def test_connect_auth_needs_both_halves():
    fs = findings(topology("  - {source: us-east, target: us-west, engine: connect, "
                           "connect: {urls: ['http://c:8083'], username: u}}\n"))
    assert [f.code for f in fs] == ["connect-auth"]


def test_connect_custom_heartbeats_topic_is_an_error():
    fs = findings(topology(f"  - {{source: us-east, target: us-west, {CONNECT}, heartbeats: {{topic: hb}}}}\n"))
    assert [(f.code, f.severity) for f in fs] == [("connect-heartbeats-topic", "error")]


def test_tasks_max_on_daemon_flow_is_a_warning():
    fs = findings(topology("  - {source: us-east, target: us-west, tasks_max: 4}\n"))
    assert [(f.code, f.severity, f.path) for f in fs] == [("tasks-max", "warning", "flows[0].tasks_max")]


def test_plaintext_connect_password():
    fs = findings(topology("  - {source: us-east, target: us-west, engine: connect, connect: {urls: "
                           "['http://c:8083'], username: u, password: hunter2}}\n"))
    assert [(f.code, f.path) for f in fs] == [("plaintext-secret", "flows[0].connect.password")]
    assert "hunter2" not in fs[0].message and "${CONNECT_PASSWORD}" in fs[0].message


def test_connect_flow_filter_with_a_comma():
    fs = findings(topology(f"  - {{source: us-east, target: us-west, {CONNECT}, topics: {{include: ['a{{1,2}}']}}}}\n"))
    assert [(f.code, f.path) for f in fs] == [("connect-comma", "flows[0].topics.include[0]")]
