"""The `mmplan` command line: parse, call, print, set the exit code."""

from __future__ import annotations

import sys

import click

from mmplan import __version__
from mmplan.errors import MmplanError


class _Group(click.Group):
    """A click group whose usage errors exit 1 (2 means "a plan with changes") and whose
    MmplanErrors print one screen instead of a traceback."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(1)
        except MmplanError as e:
            click.echo(e.render(), err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(1)
        sys.exit(rv or 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmplan")
def main() -> None:
    """Declarative Kafka cross-cluster replication with MirrorMaker 2 semantics."""


def _register() -> None:
    from mmplan.cli import doctor, drill, export, failover, import_, offsets, plan, run, sandbox, status, validate

    for command in (validate.validate, validate.graph, validate.schema, plan.plan, plan.apply, run.run,
                    status.status, offsets.offsets, failover.failover, failover.failback, drill.drill,
                    import_.import_, export.export, doctor.doctor, sandbox.sandbox):
        main.add_command(command)


_register()
