"""The applier lease: Kafka's group protocol picks exactly one daemon, and another takes over when it leaves."""

from __future__ import annotations

import logging
import time

import pytest

from mmplan.daemon.lease import Lease
from mmplan.topology.loader import load_topology

pytestmark = pytest.mark.kafka


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_one_holder_and_a_takeover(kafka_pair, unique):
    cluster = load_topology(kafka_pair.dir / "topology.yaml").topology.clusters["us-east"]
    name = unique.group()
    a = Lease("us-east", cluster, name, logging.getLogger("lease-a"))
    b = Lease("us-east", cluster, name, logging.getLogger("lease-b"))
    a.start()
    try:
        assert wait_for(lambda: a.held)
        b.start()
        time.sleep(3)  # b has joined: the group gave the partition to one of them
        assert wait_for(lambda: a.held != b.held)
        holder, other = (a, b) if a.held else (b, a)
        holder.close()
        assert wait_for(lambda: other.held)
    finally:
        a.close()
        b.close()
