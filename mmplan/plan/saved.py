"""Saved plans: the JSON plan document plus what `apply --plan` needs to trust it.

A saved plan adds the fingerprint of the live state it was computed from (one hash per cluster)
and the topology it was computed with (secrets kept as `${VAR}` references, literal ones masked)
with its hash, so `apply --plan FILE` needs no topology argument.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from mmplan.errors import MmplanError
from mmplan.plan.model import FORMAT_VERSION, Plan
from mmplan.plan.render_json import plan_document
from mmplan.topology.models import SECRET_REF, Topology, secret_fields

MASK = "***"


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    fingerprints: dict[str, str]
    topology: Topology


def topology_document(topology: Topology) -> dict:
    """The topology as plain data with every literal secret masked."""
    doc = topology.model_dump(mode="json", exclude_unset=True)
    for loc, value in secret_fields(topology):
        if not SECRET_REF.fullmatch(value):
            parent = doc
            for part in loc[:-1]:
                parent = parent[part]
            parent[loc[-1]] = MASK
    return doc


def _hash(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def save_plan(path: str | Path, plan: Plan, fingerprints: dict[str, str], topology: Topology) -> None:
    doc = plan_document(plan)
    topo = topology_document(topology)
    doc["saved"] = {"live_fingerprints": fingerprints, "topology": topo, "topology_hash": _hash(topo)}
    Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def load_plan(path: str | Path) -> SavedPlan:
    """Read a saved plan; a file that is not one, or was edited, is a clear error."""
    where = str(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MmplanError("no such plan file", where=where, hint="save one with `mmplan plan --out FILE`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MmplanError(f"not a saved plan: {e}", where=where) from None
    saved = doc.get("saved") if isinstance(doc, dict) else None
    if not isinstance(saved, dict):
        raise MmplanError("not a saved plan (no live-state fingerprint)", where=where,
                          hint="save plans with `mmplan plan --out FILE`; `--format json` output cannot be applied")
    if doc.get("format_version") != FORMAT_VERSION:
        raise MmplanError(f"plan format {doc.get('format_version')} is not {FORMAT_VERSION}", where=where,
                          hint="make the plan again with this version of mmplan")
    if _hash(saved.get("topology", {})) != saved.get("topology_hash"):
        raise MmplanError("the topology inside the plan was edited", where=where, hint="make the plan again")
    for key in ("summary", "saved"):
        doc.pop(key, None)
    for change in doc.get("changes", []):
        change.pop("action", None)
        change.pop("resource", None)
    try:
        return SavedPlan(plan=Plan.model_validate(doc), fingerprints=dict(saved["live_fingerprints"]),
                         topology=Topology.model_validate(saved["topology"]))
    except (ValidationError, KeyError, TypeError) as e:
        raise MmplanError(f"not a valid saved plan: {str(e).splitlines()[0]}", where=where) from None
