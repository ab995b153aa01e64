"""A topology over the shared sandbox pair with aliases of one test's own (`e<id>`, `w<id>`), so remote topics,
groups, offset syncs and heartbeats never meet another test's."""

from __future__ import annotations


def pair_topology(pair, run_id: str, *, west: str | None = None, rf: int = 1, flow_extra: str = "") -> str:
    """One flow e<id> -> w<id> replicating topics `p<id>.*`; `flow_extra` is YAML appended to the flow."""
    east = pair.cluster("us-east").bootstrap_servers
    west = west or pair.cluster("us-west").bootstrap_servers
    return f"""\
version: 1
defaults: {{replication_factor: {rf}}}
clusters:
  e{run_id}: {{bootstrap_servers: "{east}", brokers: 1}}
  w{run_id}: {{bootstrap_servers: "{west}", brokers: 1}}
flows:
  - source: e{run_id}
    target: w{run_id}
    topics: {{include: ["p{run_id}\\\\..*"]}}
    heartbeats: {{topic: hb-{run_id}}}
{flow_extra}"""
