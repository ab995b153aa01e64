"""`mmplan import`: an mm2.properties as a topology."""

from __future__ import annotations

from pathlib import Path

import click

from mmplan.errors import MmplanError
from mmplan.graph.checks import check_topology
from mmplan.mm2.import_ import import_properties, prune_defaults, topology_yaml
from mmplan.topology.findings import has_errors, render_text
from mmplan.topology.loader import TopologyError, parse_topology


@click.command("import")
@click.argument("properties", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="Write the topology here instead of to stdout.")
def import_(properties: str, out: str | None) -> int:
    """Convert a MirrorMaker 2 mm2.properties into a topology.

    Settings a topology cannot express are listed on stderr, never dropped silently. Exits 0 when the
    topology validates, 1 when it does not.
    """
    try:
        text = Path(properties).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MmplanError(f"cannot read: {e}", where=properties) from None
    imported = import_properties(text)
    yaml_text = topology_yaml(prune_defaults(imported.data),
                              f"# Imported by `mmplan import` from {Path(properties).name}.")
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
