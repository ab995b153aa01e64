"""Options several commands share."""

from __future__ import annotations

import os
import sys

import click

from mmplan.topology.loader import DEFAULT_FILE

FILE = click.argument("file", default=DEFAULT_FILE, type=click.Path(dir_okay=True))
FLOWS = click.option("--flow", "flows", multiple=True, metavar="SOURCE->TARGET",
                     help="Limit to this flow (repeatable); `a:b` works too.")
TIMEOUT = click.option("--timeout", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
                       help="Seconds to wait for a cluster before giving up on it.")


def use_color() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")
