"""`mmplan import`: an mm2.properties as a topology."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mmplan.cli.options import TIMEOUT
from mmplan.errors import MmplanError
from mmplan.graph.checks import check_topology
from mmplan.kafka.connect import ConnectClient
from mmplan.mm2.import_ import import_connectors, import_properties, prune_defaults, topology_yaml
from mmplan.topology.findings import has_errors, render_text
from mmplan.topology.loader import TopologyError, parse_topology


@click.command("import")
@click.argument("properties", type=click.Path(dir_okay=False), required=False)
@click.option("--connect", "url", metavar="URL", help="Read the MirrorMaker 2 connectors of this Kafka Connect "
              "cluster instead (basic auth: MMPLAN_CONNECT_USER and MMPLAN_CONNECT_PASSWORD).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the topology here instead of to stdout.")
@TIMEOUT
def import_(properties: str | None, url: str | None, out: str | None, timeout: float) -> int:
    """Convert a MirrorMaker 2 mm2.properties (or a Connect cluster's MirrorMaker 2 connectors) into a topology.

    Settings a topology cannot express are listed on stderr, never dropped silently. Exits 0 when the
    topology validates, 1 when it does not.
    """
    if bool(properties) == bool(url):
        raise MmplanError("give an mm2.properties file or --connect URL (one of them)")
    if url:
        client = ConnectClient([url], os.environ.get("MMPLAN_CONNECT_USER"),
                               os.environ.get("MMPLAN_CONNECT_PASSWORD"), timeout)
        imported = import_connectors({n: s.config for n, s in client.connectors().items()}, url)
        source = url
    else:
        try:
            text = Path(properties).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise MmplanError(f"cannot read: {e}", where=properties) from None
        imported = import_properties(text)
        source = Path(properties).name
    if not imported.data["flows"]:
        imported.notes.append("no flows found")
    yaml_text = topology_yaml(prune_defaults(imported.data), f"# Imported by `mmplan import` from {source}.")
    for note in imported.notes:
        click.echo(f"warning: {note}", err=True)
    name = out or "<imported>"
    try:
        findings = check_topology(parse_topology(yaml_text, name))
    except TopologyError as e:
        findings = e.findings
    if out:
        Path(out).write_text(yaml_text, encoding="utf-8")
    else:
        click.echo(yaml_text, nl=False)
    if findings:
        click.echo(render_text(findings, name, "imported"), err=True)
    if out and not has_errors(findings):
        click.echo(f"Wrote {out}: {len(imported.notes)} setting(s) listed above could not be expressed.", err=True)
    return 1 if has_errors(findings) else 0
