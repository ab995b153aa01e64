"""Golden files pin the text, JSON and markdown renderings of one plan with every kind of change.

Regenerate after an intended change with MMPLAN_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from builders import acl, cluster, compiled, in_sync, snapshot, topic

from mmplan.graph.render import render_mermaid
from mmplan.plan.diff import compute_plan
from mmplan.plan.render_json import render_json
from mmplan.plan.render_markdown import render_markdown
from mmplan.plan.render_text import render_text

GOLDEN = Path(__file__).parent / "golden"


def sample_plan(allow_delete: bool = False):
    flows = "  - {source: us-east, target: us-west}\n  - {source: us-west, target: us-east}\n"
    c = compiled(flows)
    east = cluster("us-east", topic("heartbeats", cleanup_policy="compact"),
                   topic("mm2-offset-syncs.us-west.internal", cleanup_policy="compact"),
                   topic("orders", 3, retention_ms="604800000"), topic("payments", 4), topic("audit", 2),
                   acls=(acl("orders", "ALL"),))
    west = in_sync(east, (topic("us-east.gone", 2), topic("us-east.audit", 6))).model_copy(deep=True)
    del west.topics["us-east.orders"]
    west.topics["us-east.payments"] = topic("us-east.payments", 2, retention_ms="1")
    west.acls.append(acl("us-east.gone"))
    return c, compute_plan(c, list(c.flows), snapshot(east, west), allow_delete=allow_delete)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MMPLAN_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"rendering changed; if intended, regenerate {path} (see module docstring)"


def test_text_golden():
    check_golden("plan.txt", render_text(sample_plan()[1]))


def test_json_golden():
    check_golden("plan.json", render_json(sample_plan()[1]))


def test_markdown_golden():
    c, plan = sample_plan()
    check_golden("plan.md", render_markdown(plan, render_mermaid(c)))


def test_text_counts_and_symbols():
    text = render_text(sample_plan()[1])
    assert "+ topic us-east.orders (3 partitions, replication factor 1, retention.ms=604800000)" in text
    assert "~ topic us-east.payments: partitions 2 → 4" in text
    assert "- topic us-east.gone (2 partitions) (held: needs --allow-delete)" in text
    assert "! warning[partition-mismatch]" in text
    assert text.rstrip().endswith("2 deletes held back (run apply with --allow-delete to make them).")


def test_allow_delete_counts_deletes():
    text = render_text(sample_plan(allow_delete=True)[1])
    assert "to change, 2 to delete." in text and "held" not in text


@pytest.mark.parametrize("color", [True, False])
def test_colour_only_when_asked(color):
    text = render_text(sample_plan()[1], color=color)
    assert ("\x1b[" in text) is color


def test_json_document_fields():
    doc = json.loads(render_json(sample_plan()[1]))
    assert doc["format_version"] == 1
    assert doc["summary"] == {"create": 7, "update": 2, "delete": 0, "held": 2}
    for change in doc["changes"]:
        assert {"kind", "action", "cluster", "resource", "before", "after"} <= set(change)


def test_no_changes_wording():
    c = compiled()
    east = cluster("us-east", topic("heartbeats", cleanup_policy="compact"),
                   topic("mm2-offset-syncs.us-west.internal", cleanup_policy="compact"))
    plan = compute_plan(c, list(c.flows), snapshot(east, in_sync(east)))
    assert render_text(plan) == "No changes. The clusters match the topology.\n"
    assert "✅ mmplan: No changes." in render_markdown(plan)


def test_errors_never_claim_the_clusters_match():
    c = compiled()
    east = cluster("us-east", topic("orders"))
    plan = compute_plan(c, list(c.flows), snapshot(east, unreachable={"us-west": "cannot connect"}))
    text = render_text(plan)
    assert "match" not in text and "! error[unreachable]: cluster us-west: cannot connect" in text
    assert text.rstrip().endswith("The plan has errors: fix them before applying.")
    assert "❌ mmplan: errors stop the plan" in render_markdown(plan)
