"""The plan as a versioned JSON document (schemas/plan.v1.json describes it)."""

from __future__ import annotations

import json

from mmplan.plan.model import Plan


def plan_document(plan: Plan) -> dict:
    doc = plan.model_dump(mode="json")
    for change, dumped in zip(plan.changes, doc["changes"], strict=True):
        dumped["action"] = change.action.value
        dumped["resource"] = change.resource
    doc["summary"] = {action.value: n for action, n in plan.counts().items()}
    doc["summary"]["held"] = len(plan.changes) - len(plan.pending)
    return doc


def render_json(plan: Plan) -> str:
    return json.dumps(plan_document(plan), indent=2) + "\n"


def plan_schema() -> dict:
    """JSON Schema of the plan document: the model plus the fields `plan_document` adds."""
    schema = Plan.model_json_schema()
    schema["title"] = "mmplan plan"
    schema["$defs"]["Change"]["properties"].update({
        "action": {"enum": ["create", "update", "delete"], "description": "what the change does to the resource"},
        "resource": {"type": "string", "description": "the resource in words, e.g. `topic us-east.orders`"},
    })
    schema["properties"]["summary"] = {
        "type": "object", "description": "how many pending changes of each action, and how many deletes are held",
        "properties": {k: {"type": "integer"} for k in ("create", "update", "delete", "held")},
    }
    return schema
