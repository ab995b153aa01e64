"""`mmplan sandbox up/status/down` end to end, and the sandbox's behaviour when things go wrong."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mmplan import sandbox
from mmplan.errors import MmplanError
from mmplan.sandbox import process

pytestmark = pytest.mark.kafka

MMPLAN = str(Path(sys.executable).parent / "mmplan")


def _mmplan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MMPLAN, "sandbox", *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def _gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_up_twice_status_and_down_via_the_cli(tmp_path):
    d = tmp_path / "sb"
    first = _mmplan("up", "--clusters", "solo", "--dir", str(d))
    try:
        assert first.returncode == 0, first.stderr
        assert "solo" in first.stdout and "ready in" in first.stdout
        sb = sandbox.load(d)
        pids = [n.pid for n in sb.cluster("solo").nodes]
        topology = yaml.safe_load((d / "topology.yaml").read_text())
        assert topology["clusters"]["solo"]["bootstrap_servers"] == [sb.cluster("solo").bootstrap_servers]
        assert topology["clusters"]["solo"]["brokers"] == 1

        again = _mmplan("up", "--clusters", "solo", "--dir", str(d))
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert [n.pid for n in sandbox.load(d).cluster("solo").nodes] == pids

        other = _mmplan("up", "--clusters", "a,b", "--dir", str(d))
        assert other.returncode == 1 and "already" not in other.stdout
        assert "error:" in other.stderr and "solo" in other.stderr and "Traceback" not in other.stderr

        st = _mmplan("status", "--dir", str(d))
        assert st.returncode == 0, st.stdout + st.stderr
        assert "solo: healthy, 1/1 brokers registered" in st.stdout
        assert f"pid {pids[0]}" in st.stdout
    finally:
        down = _mmplan("down", "--dir", str(d))
    assert down.returncode == 0, down.stderr
    assert f"stopped 1 Kafka process(es) ({pids[0]})" in down.stdout
    assert all(_gone(p) for p in pids)
    assert not d.exists()
    again = _mmplan("down", "--dir", str(d))
    assert again.returncode == 0 and "nothing to stop" in again.stdout


def test_a_port_in_use_is_a_one_screen_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = _mmplan("up", "--clusters", "solo", "--base-port", str(port), "--dir", str(tmp_path / "sb"))
    assert result.returncode == 1
    assert f"error: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sb" / "sandbox.json").exists()


def test_a_broker_that_exits_during_start_up_shows_its_log(tmp_path):
    d = tmp_path / "sb"
    with pytest.raises(MmplanError) as err:
        sandbox.up(d, aliases=["bad"], overrides={"authorizer.class.name": "no.such.Authorizer"})
    assert "exited during start-up" in err.value.message
    assert "ClassNotFoundException: no.such.Authorizer" in err.value.message
    assert err.value.where == str(d / "bad" / "node-1" / "server.log")
    assert not (d / "sandbox.json").exists()
    assert sandbox.down(d) is None


def test_a_killed_broker_shows_in_status_and_down_still_cleans_up(fresh_cluster):
    d = fresh_cluster.dir
    pid = fresh_cluster.cluster("fresh").nodes[0].pid
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    _, [cs] = sandbox.status(d)
    assert not cs.healthy and not cs.nodes[0].alive and cs.registered is None
    st = _mmplan("status", "--dir", str(d))
    assert st.returncode == 1 and "fresh: UNHEALTHY" in st.stdout and "not running" in st.stdout
    assert sandbox.down(d) == []
    assert not d.exists()


def test_down_keep_then_up_restarts_with_the_same_ports_and_data(fresh_cluster, clients, unique):
    d = fresh_cluster.dir
    cfg = fresh_cluster.kafka_config("fresh")
    topic = unique.topic()
    clients.admin(cfg).create_topics({topic: {"num_partitions": 2, "replication_factor": 1}}, wait_for_metadata=True)
    clients.close()
    old_pid = fresh_cluster.cluster("fresh").nodes[0].pid
    assert sandbox.down(d, keep=True) == [old_pid]
    assert process.is_ours(old_pid, d / "fresh" / "node-1") is False

    port = fresh_cluster.cluster("fresh").nodes[0].port
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(MmplanError, match=f"port {port} on 127.0.0.1 is already in use"):
            sandbox.up(d)
    assert sandbox.load(d).cluster("fresh").nodes[0].pid is None  # still recorded, not running

    result = sandbox.up(d)
    assert result.started and result.restarted
    assert result.sandbox.kafka_config("fresh") == cfg
    assert result.sandbox.cluster("fresh").nodes[0].pid != old_pid
    assert topic in clients.admin(cfg).list_topics()


def test_a_port_taken_after_allocation_is_retried_with_new_ports(tmp_path, monkeypatch):
    """Free ports are only free until someone binds them: a broker that cannot bind is restarted elsewhere."""
    from mmplan.sandbox import ports

    real_allocate = ports.allocate
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        calls = []

        def allocate_a_taken_port_first(count, base_port=None):
            got = real_allocate(count, base_port)
            calls.append(got)
            return [taken, *got[1:]] if len(calls) == 1 else got

        monkeypatch.setattr(ports, "allocate", allocate_a_taken_port_first)
        messages = []
        d = tmp_path / "sb"
        try:
            sb = sandbox.up(d, aliases=["solo"], progress=messages.append).sandbox
            assert len(calls) == 2
            assert any("trying again with new ports" in m for m in messages)
            assert sb.cluster("solo").nodes[0].port == calls[1][0] != taken
            assert sandbox.status(d)[1][0].healthy
        finally:
            sandbox.down(d)
