"""`mmplan doctor`: one line per check of every cluster; exit 1 when any fails."""

from __future__ import annotations

import json
import sys

import click

from mmplan.kafka.doctor import run_doctor
from mmplan.topology.loader import DEFAULT_FILE, load_topology


@click.command()
@click.argument("file", default=DEFAULT_FILE, type=click.Path(dir_okay=False))
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds to wait for each cluster.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def doctor(file: str, timeout: float, fmt: str) -> int:
    """Check every cluster: reachable, credentials, Kafka version, brokers, cluster id and the
    permissions mmplan needs. Makes no change. Exits 1 when any check fails."""
    checks = run_doctor(load_topology(file).topology, timeout=timeout)
    failed = sum(not c.ok for c in checks)
    if fmt == "json":
        doc = {"ok": failed == 0,
               "checks": [{"cluster": c.cluster, "check": c.name, "ok": c.ok, "detail": c.detail} for c in checks]}
        click.echo(json.dumps(doc, indent=2))
    else:
        tty = sys.stdout.isatty()
        marks = {True: "✓", False: "✗"} if tty else {True: "ok", False: "FAIL"}
        width = max((len(c.cluster) for c in checks), default=0)
        for c in checks:
            click.echo(f"{marks[c.ok]:<4} {c.cluster:<{width}}  {c.name:<15} {c.detail}")
        clusters = len({c.cluster for c in checks})
        click.echo(f"\n{failed} of {len(checks)} checks failed." if failed
                   else f"\nAll {len(checks)} checks passed on {clusters} cluster{'s' if clusters != 1 else ''}.")
    return 1 if failed else 0
