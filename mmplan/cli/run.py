"""`mmplan run`: the replication daemon."""

from __future__ import annotations

import functools
import hashlib
import logging
import signal
import sys
import threading
from pathlib import Path

import click

from mmplan.cli.options import FILE, FLOWS, TIMEOUT
from mmplan.daemon.gitsource import GitSource
from mmplan.daemon.lease import Lease
from mmplan.daemon.logs import Redactor, setup_logging, topology_secrets
from mmplan.daemon.metrics import Metrics, serve
from mmplan.daemon.runner import STOP_TIMEOUT, Daemon, running_flows
from mmplan.errors import MmplanError
from mmplan.graph.checks import check_topology
from mmplan.graph.compile import compile_topology
from mmplan.kafka.config import client_config
from mmplan.topology import findings as report
from mmplan.topology.findings import has_errors
from mmplan.topology.loader import load_topology
from mmplan.topology.models import parse_duration

log = logging.getLogger("mmplan.run")


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    if seconds <= 0:
        raise click.BadParameter("must be more than 0")
    return seconds


@click.command()
@FILE
@FLOWS
@click.option("--metrics-port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Serve Prometheus /metrics and /healthz on this port (0: any free port, logged).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="HOST",
              help="Address to serve metrics on (0.0.0.0 for every interface).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per line (ts, level, logger, msg, flow, ...).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="debug also shows quiet reconciles and kafka-python's own warnings.")
@click.option("--reconcile-interval", callback=_duration, metavar="DURATION",
              help="Reload the topology and apply safe changes this often (default: the flows' shortest "
                   "refresh_topics.interval, 60s unless set).")
@click.option("--exactly-once", is_flag=True,
              help="Replicate every flow it runs exactly once (transactions on the target), whatever the "
                   "topology's exactly_once says.")
@click.option("--git", "git_repo", metavar="REPO",
              help="Take the topology from this git repository (a URL or path git understands) instead of FILE.")
@click.option("--ref", default="main", show_default=True, help="With --git: the branch, tag or commit to run.")
@click.option("--path", "git_path", default="mmplan.yaml", show_default=True, metavar="PATH",
              help="With --git: the topology file's path in the repository.")
@click.option("--git-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="With --git: where the daemon keeps its clone (default .mmplan/git/<hash> here).")
@click.option("--applier-group", metavar="NAME",
              help="Daemons with the same name elect one applier among them (default: derived from the topology "
                   "file's absolute path, or from --git and --path).")
@click.option("--no-lease", is_flag=True,
              help="Apply without electing an applier (only when exactly one daemon runs this topology).")
@TIMEOUT
def run(file: str, flows: tuple[str, ...], metrics_port: int | None, metrics_host: str, log_format: str,
        log_level: str, reconcile_interval: float | None, exactly_once: bool, git_repo: str | None, ref: str,
        git_path: str, git_dir: str | None, applier_group: str | None, no_lease: bool, timeout: float) -> int:
    """Replicate every enabled flow (or the --flow ones) until SIGTERM or Ctrl-C.

    At start and then every reconcile interval, on SIGHUP and when FILE changes, it re-reads the topology
    (FILE, or --git's newest commit of --ref) and applies the safe changes (creations, partition increases,
    config and ACL sync; never deletes) with the same code as `apply`, and picks up new source topics. With
    several daemons on one topology, only the one holding the applier lease applies. Exits 0 after a clean
    stop, 1 on errors.
    """
    git, commit = None, None
    identity = str(Path(file).resolve())
    if git_repo:
        identity = f"{git_repo}\n{git_path}"
        key = hashlib.sha256(f"{git_repo}\n{ref}\n{git_path}".encode()).hexdigest()[:12]
        git = GitSource(git_repo, ref, git_path, Path(git_dir) if git_dir else Path(".mmplan/git") / key)
        path, commit = git.sync()
        file = str(path)
    loaded = load_topology(file)
    findings = check_topology(loaded)
    if has_errors(findings):
        click.echo(report.render_text(findings, file, ""), err=True)
        return 1
    chosen = running_flows(compile_topology(loaded.topology).select(flows))
    if not chosen:
        raise MmplanError("no enabled flow to run", where=file, hint="enable a flow, or name enabled ones with --flow")
    for alias in dict.fromkeys(a for f in chosen for a in (f.source, f.target)):
        client_config(alias, loaded.topology.clusters[alias])  # an unset ${VAR} fails now, not in a retry loop
    runner_factory = _flow_runner(exactly_once)

    lease = None
    if not no_lease:  # on the first flow's source: every daemon of this topology (and --flow choice) agrees
        name = applier_group or hashlib.sha256(identity.encode()).hexdigest()[:12]
        alias = chosen[0].source
        lease = Lease(alias, loaded.topology.clusters[alias], name, log, timeout)

    redact = Redactor(topology_secrets(loaded.topology))
    metrics = Metrics()
    daemon = Daemon(file, loaded, chosen, flow_names=flows, metrics=metrics, runner_factory=runner_factory,
                    timeout=timeout, interval=reconcile_interval, redact=redact, git=git, commit=commit, lease=lease)
    view = None
    if log_format == "text" and sys.stderr.isatty():
        from mmplan.daemon.progress import ProgressView

        view = ProgressView(metrics, daemon.states, sys.stderr)
    handler = setup_logging(log_format, level=getattr(logging, log_level.upper()),
                            stream=view.stream if view else None, redact=redact)
    server = None
    if metrics_port is not None:
        try:
            server = serve(metrics, metrics_port, daemon.health, host=metrics_host)
        except OSError as e:
            raise MmplanError(f"cannot serve metrics on {metrics_host}:{metrics_port}: {e.strerror or e}",
                              hint="choose another --metrics-port") from None
        host, port = server.server_address[:2]
        log.info("serving http://%s:%d/metrics and /healthz", host, port, extra={"port": port})

    stop = threading.Event()
    restore = _signals(stop, daemon)
    if view:
        view.start()
    try:
        return daemon.run(stop)
    finally:
        restore()
        if view:
            view.stop()
        if server:
            server.shutdown()
            server.server_close()
        logging.getLogger().removeHandler(handler)


def _flow_runner(exactly_once: bool = False):
    try:
        from mmplan.daemon.flow import FlowRunner
    except ImportError as e:
        raise MmplanError(f"the replication engine is not available in this build ({e})") from None
    return functools.partial(FlowRunner, exactly_once=True) if exactly_once else FlowRunner


def _signals(stop: threading.Event, daemon: Daemon):
    """SIGTERM and SIGINT stop (a second one exits at once); SIGHUP reconciles now. Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_stop(signum, frame) -> None:
        if stop.is_set():
            log.warning("second %s: exiting without waiting for the flows", signal.Signals(signum).name)
            sys.stderr.flush()
            import os

            os._exit(1)
        log.info("%s: stopping (at most %ds)", signal.Signals(signum).name, int(STOP_TIMEOUT))
        stop.set()

    def on_hup(signum, frame) -> None:
        log.info("SIGHUP: reconciling now")
        daemon.request_reconcile()

    wanted = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop}
    if hasattr(signal, "SIGHUP"):
        wanted[signal.SIGHUP] = on_hup
    old = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore
