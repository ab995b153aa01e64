"""Views of the cluster graph for pull-request review: Mermaid, Graphviz dot, JSON."""

from __future__ import annotations

import json
import re

from mmplan.graph.compile import CompiledFlow, CompiledTopology

_MAX_PATTERNS = 4


def graph_data(compiled: CompiledTopology) -> dict:
    """The graph as plain data: clusters and every declared flow."""
    return {
        "clusters": [
            {"alias": alias, "brokers": c.brokers, "bootstrap_servers": c.bootstrap_servers}
            for alias, c in compiled.topology.clusters.items()
        ],
        "flows": [
            {
                "name": f.name,
                "source": f.source,
                "target": f.target,
                "enabled": f.settings.enabled,
                "replication_policy": f.settings.replication_policy.value,
                "remote_topic": f.policy.remote_topic("<topic>"),
                "topics": f.settings.topics.model_dump(),
                "groups": f.settings.groups.model_dump(),
                "replication_factor": f.settings.replication_factor,
                "heartbeats": f.settings.heartbeats.enabled,
                "checkpoints": f.settings.checkpoints.enabled,
            }
            for f in compiled.flows
        ],
    }


def render_json(compiled: CompiledTopology) -> str:
    return json.dumps(graph_data(compiled), indent=2)


def _summary(flow: CompiledFlow) -> list[str]:
    s = flow.settings
    lines = [f"{s.replication_policy.value}: <topic> → {flow.policy.remote_topic('<topic>')}",
             "topics: " + _patterns(s.topics.include)]
    if s.topics.exclude:
        lines.append("except: " + _patterns(s.topics.exclude))
    lines.append(f"rf {s.replication_factor}" + ("" if s.heartbeats.enabled else ", no heartbeats"))
    if not s.enabled:
        lines.insert(0, "(disabled)")
    return lines


def _patterns(patterns: list[str]) -> str:
    if not patterns:
        return "(none)"
    shown = ", ".join(patterns[:_MAX_PATTERNS])
    more = len(patterns) - _MAX_PATTERNS
    return shown + (f" +{more} more" if more > 0 else "")


def _node_id(alias: str) -> str:
    return "c_" + re.sub(r"[^A-Za-z0-9_]", "_", alias)


def _cluster_label(compiled: CompiledTopology, alias: str) -> str:
    brokers = compiled.topology.clusters[alias].brokers if alias in compiled.topology.clusters else None
    return alias + (f" ({brokers} broker{'s' if brokers != 1 else ''})" if brokers else "")


def _aliases(compiled: CompiledTopology) -> list[str]:
    """Declared clusters, then any unknown alias a flow names (shown so the mistake is visible)."""
    seen = list(compiled.topology.clusters)
    for f in compiled.flows:
        seen += [a for a in (f.source, f.target) if a not in seen]
    return seen


def render_mermaid(compiled: CompiledTopology) -> str:
    """A Mermaid flowchart; GitHub renders it in comments and Markdown files."""
    def esc(text: str) -> str:
        return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")

    out = ["flowchart LR"]
    for alias in _aliases(compiled):
        out.append(f'  {_node_id(alias)}["{esc(_cluster_label(compiled, alias))}"]')
    for f in compiled.flows:
        arrow = "-->" if f.settings.enabled else "-.->"
        label = "<br/>".join(esc(line) for line in _summary(f))
        out.append(f'  {_node_id(f.source)} {arrow}|"{label}"| {_node_id(f.target)}')
    return "\n".join(out) + "\n"


def render_dot(compiled: CompiledTopology) -> str:
    """A Graphviz digraph."""
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"')

    out = ["digraph mmplan {", "  rankdir=LR;", "  node [shape=box];"]
    for alias in _aliases(compiled):
        out.append(f'  "{esc(alias)}" [label="{esc(_cluster_label(compiled, alias))}"];')
    for f in compiled.flows:
        style = "" if f.settings.enabled else ", style=dashed"
        label = "\\n".join(esc(line) for line in _summary(f))
        out.append(f'  "{esc(f.source)}" -> "{esc(f.target)}" [label="{label}"{style}];')
    out.append("}")
    return "\n".join(out) + "\n"


RENDERERS = {"mermaid": render_mermaid, "dot": render_dot, "json": render_json}
