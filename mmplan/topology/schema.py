"""The topology's JSON Schema, generated from the models (checked in as schemas/topology.v1.json)."""

from __future__ import annotations

import json

from mmplan.topology.models import Topology

SCHEMA_FILE = "schemas/topology.v1.json"


def schema_text() -> str:
    return json.dumps(Topology.model_json_schema(), indent=2) + "\n"
