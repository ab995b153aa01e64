"""The offline commands through the real entry point: validate, graph, schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmplan import __version__
from mmplan.cli import main
from mmplan.topology.schema import SCHEMA_FILE, schema_text

ROOT = Path(__file__).parent.parent
ACTIVE_PASSIVE = str(ROOT / "examples" / "active-passive.yaml")
BROKEN = """\
version: 1
defaults: {replication_policy: identity}
clusters:
  us-east: {bootstrap_servers: e:9092, brokers: 3}
  us-west: {bootstrap_servers: w:9092, brokers: 1}
flows:
  - {source: us-east, target: us-west, heartbeats: {enabled: false}}
  - {source: us-west, target: us-east}
"""


def run(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def broken(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    return str(path)


def test_validate_clean():
    result = run("validate", ACTIVE_PASSIVE)
    assert result.exit_code == 0
    assert result.output.strip().endswith("valid (2 clusters, 2 flows)")


def test_validate_errors_text(broken):
    result = run("validate", broken)
    assert result.exit_code == 1
    assert f"{broken}:7: error[cycle] flows[0]: replication cycle: us-east -> us-west -> us-east" in result.output
    assert "error[replication-factor]" in result.output  # rf 2 on the 1-broker us-west
    assert "warning[no-heartbeats]" in result.output
    assert result.output.rstrip().endswith("errors, 1 warning")


def test_validate_json(broken):
    result = run("validate", broken, "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["valid"] is False
    assert {"cycle", "no-heartbeats", "replication-factor"} <= {f["code"] for f in doc["findings"]}
    assert set(doc["findings"][0]) == {"code", "severity", "message", "path", "line"}


def test_validate_github_annotations(broken):
    result = run("validate", broken, "--format", "github")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith(f"::error file={broken},line=7,title=cycle::") for line in lines)
    assert any(line.startswith("::warning ") for line in lines)


def test_validate_clean_github_prints_nothing():
    result = run("validate", ACTIVE_PASSIVE, "--format", "github")
    assert (result.exit_code, result.output) == (0, "")


def test_parse_error_as_json(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nclusters: [\n")
    result = run("validate", str(path), "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.output)["findings"][0]["code"] == "parse"


def test_parse_error_as_text_is_one_screen(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nclusters:\n  a: {bootstrap_servers: x:1}\n  a: {bootstrap_servers: x:1}\n")
    result = run("validate", str(path))
    assert result.exit_code == 1
    assert f"{path}:4" in result.output and "duplicate key 'a'" in result.output
    assert len(result.output.splitlines()) < 10


def test_default_file_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("validate")
    assert result.exit_code == 1
    assert "mmplan.yaml" in result.output and "no such file" in result.output


def test_default_file_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mmplan.yaml").write_text(Path(ACTIVE_PASSIVE).read_text())
    assert run("validate").exit_code == 0


def test_usage_errors_exit_1_not_2():
    result = run("validate", "--frobnicate")
    assert result.exit_code == 1 and "No such option" in result.output
    assert run("no-such-command").exit_code == 1


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_graph_mermaid():
    result = run("graph", ACTIVE_PASSIVE)
    assert result.exit_code == 0
    assert result.output.startswith("flowchart LR\n")
    assert 'c_us_east -->|"default: #lt;topic#gt; → us-east.#lt;topic#gt;' in result.output
    assert "c_us_west -.->|" in result.output  # the disabled reverse flow is dashed


def test_graph_dot_and_json():
    dot = run("graph", ACTIVE_PASSIVE, "--format", "dot").output
    assert dot.startswith("digraph mmplan {") and '"us-west" -> "us-east"' in dot and "style=dashed" in dot
    doc = json.loads(run("graph", ACTIVE_PASSIVE, "--format", "json").output)
    assert [f["name"] for f in doc["flows"]] == ["us-east->us-west", "us-west->us-east"]
    assert doc["flows"][0]["remote_topic"] == "us-east.<topic>"


def test_graph_of_broken_file_fails_cleanly(tmp_path):
    result = run("graph", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 1 and "no such file" in result.output


def test_schema_matches_checked_in_file():
    assert run("schema").output == schema_text()
    assert (ROOT / SCHEMA_FILE).read_text() == schema_text(), "regenerate: mmplan schema > schemas/topology.v1.json"


def test_plan_schema_matches_checked_in_file():
    from mmplan.plan.render_json import plan_schema

    assert run("schema", "plan").output == schema_text(plan_schema())
    assert (ROOT / "schemas" / "plan.v1.json").read_text() == schema_text(plan_schema())
