"""The JSON Schemas, generated from the models and checked in under schemas/."""

from __future__ import annotations

import json

from mmplan.topology.models import Topology

SCHEMA_FILE = "schemas/topology.v1.json"


def schema_text(schema: dict | None = None) -> str:
    """A schema as the checked-in files spell it; the topology's by default."""
    return json.dumps(schema or Topology.model_json_schema(), indent=2) + "\n"
