"""deploy/: the alerting rules and the dashboard use only metrics the daemon exports, promtool accepts the rules
and their unit tests, systemd accepts the unit, and the dashboard is well formed. No Kafka.

promtool comes with Debian's `prometheus` package (.ci/run installs it when it can), systemd-analyze with systemd;
the tests that need them are skipped, saying so, where they are missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmplan.daemon.metrics import Metrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ALERTS = DEPLOY / "alerts.yml"
ALERT_TESTS = DEPLOY / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
UNIT = DEPLOY / "mmplan.service"

# a metric name in PromQL: not a label name (followed by `=`, `!=`, `=~`, `!~`), not inside `by (...)`
_NAME = re.compile(r"(?<![\w:$])(mmplan_[a-zA-Z0-9_]*)")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not on PATH (Debian: apt-get install prometheus)")


def alert_expressions() -> dict[str, str]:
    doc = yaml.safe_load(ALERTS.read_text())
    return {rule["alert"]: rule["expr"] for group in doc["groups"] for rule in group["rules"]}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_expressions() -> dict[str, str]:
    """Each panel target's and each query variable's PromQL, keyed by where it is."""
    doc = dashboard()
    exprs = {f"panel {p['id']} {p['title']!r} {t['refId']}": t["expr"] for p in doc["panels"] for t in p["targets"]}
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            exprs[f"variable {var['name']}"] = var["definition"]
    return exprs


def families() -> dict[str, str]:
    """The daemon's metric families: name (as prometheus_client names it, without `_total`) -> type."""
    return {family.name: family.type for family in Metrics().registry.collect()}


def used_names(expressions: dict[str, str]) -> dict[str, set[str]]:
    """Metric name -> where it is used."""
    used: dict[str, set[str]] = {}
    for where, expr in expressions.items():
        for name in _NAME.findall(expr):
            used.setdefault(name, set()).add(where)
    return used


def family_of(name: str, known: dict[str, str]) -> str | None:
    """The family a sample name belongs to, if its suffix fits the family's type (`_total` of a counter...)."""
    for family, kind in known.items():
        if any(name == family + suffix for suffix in _SUFFIXES.get(kind, ("",))):
            return family
    return None


def used_families() -> set[str]:
    """Every family the alert rules and the dashboard use (for tests/kafka/test_deploy_metrics.py)."""
    known = families()
    names = used_names({**alert_expressions(), **dashboard_expressions()})
    return {family_of(name, known) or name for name in names}


def test_every_metric_the_alerts_and_the_dashboard_use_is_one_the_daemon_exports():
    known = families()
    assert "mmplan_reconcile_errors" in known and known["mmplan_reconcile_errors"] == "counter"
    for source, expressions in (("alerts.yml", alert_expressions()), ("grafana-dashboard.json",
                                                                       dashboard_expressions())):
        used = used_names(expressions)
        assert used, f"{source}: no mmplan metric found"
        unknown = {name: sorted(where) for name, where in used.items() if family_of(name, known) is None}
        assert not unknown, f"{source} uses metrics the daemon does not export: {unknown}"


def test_the_name_check_catches_a_misspelled_or_mis_suffixed_name():
    known = families()
    for wrong in ("mmplan_replicated_record_total", "mmplan_replicated_records",  # a counter needs `_total`
                  "mmplan_flow_state_total", "mmplan_replication_latency_seconds_total"):
        assert family_of(wrong, known) is None, wrong
    assert family_of("mmplan_replication_latency_seconds_bucket", known) == "mmplan_replication_latency_seconds"
    assert used_names({"x": 'rate(mmplan_errors_total{flow=~"$flow"}[5m]) > on (flow) mmplan_flow_rpo_seconds'}) \
        == {"mmplan_errors_total": {"x"}, "mmplan_flow_rpo_seconds": {"x"}}


def test_the_alerts_cover_the_issue_and_each_has_a_severity_summary_and_description():
    doc = yaml.safe_load(ALERTS.read_text())
    assert [g["name"] for g in doc["groups"]] == ["mmplan"]
    rules = doc["groups"][0]["rules"]
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert "mmplan " in rule["annotations"]["description"], f"{rule['alert']}: say what to run"
    exprs = " ".join(r["expr"] for r in rules)
    for needed in ('up{job="mmplan"}', "mmplan_flow_state", "mmplan_flow_rpo_seconds",
                   "mmplan_heartbeat_last_timestamp_seconds", "mmplan_reconcile_last_success_timestamp_seconds",
                   "mmplan_reconcile_errors_total", 'mmplan_changes_pending{reason="held"}'):
        assert needed in exprs, needed
    # every alert has a unit test that fires it and one that does not
    tested = yaml.safe_load(ALERT_TESTS.read_text())
    fired, quiet = set(), set()
    for case in tested["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {r["alert"] for r in rules}
    assert names <= fired and names <= quiet, (names - fired, names - quiet)


@needs_promtool
def test_promtool_checks_the_rules():
    out = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_promtool_runs_the_alerts_unit_tests():
    out = subprocess.run(["promtool", "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path):
    """The dashboard's PromQL, as recording rules (Grafana's variables replaced), is valid for promtool."""
    rules = []
    for i, expr in enumerate(e for where, e in dashboard_expressions().items() if where.startswith("panel")):
        expr = expr.replace("$__rate_interval", "5m").replace("$flow", ".*")
        rules.append({"record": f"dashboard:query{i}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not on PATH (no systemd)")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    mmplan = Path(sys.executable).with_name("mmplan")
    assert mmplan.exists(), f"{mmplan}: install the project in this environment (pip install -e .)"
    text = UNIT.read_text()
    assert "ExecStart=/opt/mmplan/bin/mmplan " in text
    unit = tmp_path / "mmplan.service"
    unit.write_text(text.replace("ExecStart=/opt/mmplan/bin/mmplan ", f"ExecStart={mmplan} "))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    # verify also reports problems in unrelated units of the host; keep only what concerns this one
    mine = [line for line in (out.stdout + out.stderr).splitlines() if "mmplan.service" in line]
    assert out.returncode == 0 and not mine, out.stdout + out.stderr


def test_the_dashboard_is_well_formed():
    doc = dashboard()
    assert doc["schemaVersion"] >= 36 and doc["uid"] and doc["title"]
    assert [i["name"] for i in doc["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["flow"]["definition"] == "label_values(mmplan_flow_state, flow)"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    for p in doc["panels"]:
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        assert p["targets"] and all(t["expr"].strip() and t["refId"] for t in p["targets"]), p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
    queries = " ".join(dashboard_expressions().values())
    for needed in ("mmplan_replicated_records_total", "mmplan_replicated_bytes_total", "mmplan_consumer_lag_records",
                   "histogram_quantile(0.5", "histogram_quantile(0.99", "mmplan_replication_latency_seconds_bucket",
                   "mmplan_flow_rpo_seconds", "mmplan_heartbeat_last_timestamp_seconds",
                   "mmplan_checkpoint_last_timestamp_seconds", "mmplan_flow_state", "mmplan_errors_total",
                   "mmplan_reconcile_last_success_timestamp_seconds", "mmplan_changes_applied_total",
                   "mmplan_changes_pending", "mmplan_applier", "mmplan_topology_info"):
        assert needed in queries, needed
