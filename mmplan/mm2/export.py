"""A topology as an mm2.properties for MirrorMaker 2's dedicated mode (`connect-mirror-maker.sh`).

`defaults:` become top-level properties (all of them, so MirrorMaker 2's own defaults never apply), a
flow's settings that differ from the defaults become `<A>-><B>.` properties. Whatever mm2.properties has
no place for (`rpo`, `brokers`, `cluster_id`, a custom heartbeats topic, the engine, sub-second intervals)
goes into a commented `# mmplan:` block that `mmplan import` lays back over the result: the export is
exactly what an import of the properties alone would miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from mmplan.graph.compile import compile_topology
from mmplan.mm2 import settings as S
from mmplan.mm2.import_ import BLOCK, import_properties
from mmplan.mm2.properties import line
from mmplan.mm2.security import DIR_PROVIDER, ENV_PROVIDER, java_security
from mmplan.topology.models import Cluster, FlowSettings, Topology, deep_merge, format_duration


@dataclass
class Exported:
    text: str
    notes: list[str] = field(default_factory=list)  # what only the `# mmplan:` block keeps


def export_properties(topology: Topology, source: str | None = None) -> Exported:
    lines = [f"# MirrorMaker 2 dedicated mode (connect-mirror-maker.sh), exported by mmplan"
             f"{' from ' + source if source else ''}.", "", line("clusters", ", ".join(topology.clusters))]
    client: dict[str, str] = {}
    for alias, cluster in topology.clusters.items():
        client[f"{alias}.bootstrap.servers"] = ",".join(cluster.bootstrap_servers)
        client.update({f"{alias}.{k}": v for k, v in java_security(cluster.security).items()})
    lines += [line(k, v) for k, v in client.items()]
    providers = [name for name, used in (("env", any("${env:" in v for v in client.values())),
                                         ("dir", any("${dir:" in v for v in client.values()))) if used]
    if providers:
        lines += ["", "# secrets and key files come from the environment and the file system at start-up",
                  line("config.providers", ", ".join(providers))]
        lines += [line(*p) for name, p in (("env", ENV_PROVIDER), ("dir", DIR_PROVIDER)) if name in providers]
    defaults = S.connector_properties(topology.defaults)
    lines += ["", "# every flow, unless it says otherwise"] + [line(k, v) for k, v in defaults.items()]
    compiled = compile_topology(topology)
    for flow in compiled.flows:
        own = {k: v for k, v in S.connector_properties(flow.settings).items() if defaults.get(k) != v}
        lines += ["", f"# flow {flow.name}", line(f"{flow.name}.enabled", "true" if flow.settings.enabled else "false")]
        lines += [line(f"{flow.name}.{k}", v) for k, v in own.items()]
    text = "\n".join(lines) + "\n"
    block = _block(topology, text)
    notes = _notes(block)
    if block:
        dumped = yaml.safe_dump(block, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
        text += ("\n# What MirrorMaker 2 has no setting for; `mmplan import` reads it back.\n# " + BLOCK + "\n"
                 + "".join(f"#   {row}\n" for row in dumped.splitlines()))
    return Exported(text, notes)


def _block(topology: Topology, text: str) -> dict:
    """The settings an import of `text` alone would get wrong, at their resolved values."""
    back = import_properties(text).data
    block: dict = {}
    defaults = _differences(_dump(topology.defaults), _dump(FlowSettings.model_validate(back.get("defaults", {}))))
    if defaults:
        block["defaults"] = defaults
    clusters = {}
    for alias, cluster in topology.clusters.items():
        diff = _differences(_dump(cluster), _dump(Cluster.model_validate(back["clusters"][alias])))
        if diff:
            clusters[alias] = diff
    if clusters:
        block["clusters"] = clusters
    restored = {**back, "defaults": deep_merge(back.get("defaults", {}), defaults)}
    flows = {}
    for flow, other in zip(compile_topology(topology).flows, compile_topology(Topology.model_validate(restored)).flows,
                           strict=True):
        diff = _differences(_dump(flow.settings), _dump(other.settings))
        if diff:
            flows[flow.name] = diff
    if flows:
        block["flows"] = flows
    return block


def _dump(model: BaseModel) -> dict:
    """Plain data with durations spelled as in a topology file (5s, 10m), so the block reads like one."""
    return _spell(model.model_dump(mode="json"))


def _spell(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _spell(v, k) for k, v in value.items()}
    if key in ("interval", "rpo") and isinstance(value, int | float):
        return format_duration(value)
    return value


def _differences(want: dict, got: dict) -> dict:
    return {k: v for k, v in want.items() if got.get(k) != v}


def _notes(block: dict) -> list[str]:
    notes = []
    for alias, keys in block.get("clusters", {}).items():
        notes += [f"cluster {alias}: {k}" for k in keys]
    notes += [f"defaults: {k}" for k in block.get("defaults", {})]
    for flow, keys in block.get("flows", {}).items():
        notes += [f"flow {flow}: {k}" for k in keys]
    return notes
