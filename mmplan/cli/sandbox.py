"""`mmplan sandbox`: real Kafka clusters on this machine for trying mmplan and for its tests."""

from __future__ import annotations

import time

import click

from mmplan import sandbox as sbx
from mmplan.sandbox import connect as connect_worker
from mmplan.sandbox import maven, process
from mmplan.sandbox.state import SECURITY_MODES

_dir_option = click.option("--dir", "directory", default=sbx.DEFAULT_DIR, show_default=True,
                           type=click.Path(file_okay=False), help="Where the sandbox keeps state and data.")


@click.group()
def sandbox() -> None:
    """Run real Kafka (KRaft) clusters on 127.0.0.1 from Maven Central jars."""


@sandbox.command()
def fetch() -> int:
    """Resolve the Kafka jars into the per-user cache (Maven runs only the first time)."""
    start = time.monotonic()
    lib = maven.resolve()
    jars = len(list(lib.glob("*.jar")))
    click.echo(f"Kafka {maven.KAFKA_VERSION}: {jars} jars in {lib} ({time.monotonic() - start:.1f}s)")
    return 0


@sandbox.command()
@click.option("--clusters", help=f"Comma-separated aliases [default: {','.join(sbx.DEFAULT_CLUSTERS)}].")
@click.option("--brokers", type=int, help="Brokers per cluster [default: 1].")
@click.option("--security", type=click.Choice(SECURITY_MODES), help="Client listener [default: plaintext].")
@click.option("--base-port", type=int, help="Use consecutive ports from here instead of free ones.")
@click.option("--timeout", type=float, default=sbx.cluster.START_TIMEOUT, show_default=True,
              help="Seconds to wait for the clusters to answer.")
@click.option("--connect", is_flag=True, help="Also start a Kafka Connect worker; the flow uses `engine: connect`.")
@_dir_option
def up(clusters, brokers, security, base_port, timeout, connect, directory) -> int:
    """Start one KRaft cluster per alias and write DIR/topology.yaml."""
    aliases = [a.strip() for a in clusters.split(",") if a.strip()] if clusters is not None else None
    result = sbx.up(directory, aliases, brokers, security, base_port=base_port, timeout=timeout,
                    progress=lambda msg: click.echo(msg, err=True), connect=connect)
    sb = result.sandbox
    if not result.started:
        click.echo(f"already running in {sb.dir}:")
    for c in sb.clusters:
        took = f"ready in {c.startup_seconds:.1f}s" if result.started else "running"
        pids = ",".join(str(n.pid) for n in c.nodes)
        click.echo(f"  {c.alias:<12} {took:<15} bootstrap {c.bootstrap_servers}  "
                   f"({len(c.nodes)} broker(s), {sb.protocol}, pid {pids})")
    if sb.connect is not None:
        click.echo(f"  {'connect':<12} {sb.connect.url}  (internal topics on {sb.connect.cluster}, "
                   f"pid {sb.connect.pid})")
    click.echo(f"topology: {sb.dir / sbx.outputs.TOPOLOGY_FILE}")
    if sb.password:
        click.echo(f"secrets:  source {sb.dir / sbx.outputs.ENV_FILE}   (sets ${sbx.PASSWORD_VAR})")
    click.echo(f"logs:     {sb.dir}/<cluster>/node-<n>/server.log")
    click.echo(f"stop:     mmplan sandbox down --dir {directory}")
    return 0


@sandbox.command()
@_dir_option
def status(directory) -> int:
    """List the sandbox's clusters, ports, pids and health; exit 1 if any is unhealthy."""
    sb, clusters = sbx.status(directory)
    click.echo(f"sandbox {sb.dir} (Kafka {sb.kafka_version}, {sb.protocol})")
    for cs in clusters:
        c = cs.cluster
        reg = "no answer" if cs.registered is None else f"{cs.registered}/{len(c.nodes)} brokers registered"
        click.echo(f"{c.alias}: {'healthy' if cs.healthy else 'UNHEALTHY'}, {reg}, "
                   f"bootstrap {c.bootstrap_servers}, cluster id {c.cluster_id}")
        for ns in cs.nodes:
            n = ns.node
            role = "broker+controller" if n.is_controller else "broker"
            ports = f"port {n.port}, internal {n.internal_port}"
            if n.is_controller:
                ports += f", controller {n.controller_port}"
            state = f"running, pid {n.pid}, rss {ns.rss_kb // 1024} MB" if ns.alive else "not running"
            click.echo(f"  node {n.node_id} {role:<17} {ports}: {state}")
    connect_ok = True
    if sb.connect is not None:
        alive = process.is_ours(sb.connect.pid, sb.connect_dir)
        connect_ok = alive and connect_worker.ready(sb.connect)
        click.echo(f"connect: {'healthy' if connect_ok else 'UNHEALTHY'}, {sb.connect.url}, "
                   + (f"pid {sb.connect.pid}" if alive else "not running"))
    return 0 if all(cs.healthy for cs in clusters) and connect_ok else 1


@sandbox.command()
@click.option("--keep", is_flag=True, help="Keep data, logs and state so `up` restarts the same clusters.")
@_dir_option
def down(keep, directory) -> int:
    """Stop exactly the processes `up` started in DIR and remove its data unless --keep."""
    stopped = sbx.down(directory, keep=keep)
    if stopped is None:
        click.echo(f"no sandbox in {directory}; nothing to stop")
        return 0
    pids = ", ".join(str(p) for p in sorted(stopped)) or "none were running"
    click.echo(f"stopped {len(stopped)} Kafka process(es) ({pids})")
    click.echo(f"kept data in {directory}" if keep else f"removed {directory}")
    return 0
