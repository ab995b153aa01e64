"""A FlowRunner in a process of its own, for kill -9 tests: `engine_proc.py TOPOLOGY TOPIC...`.

Runs the topology's only flow on the given source topics until SIGTERM, then exits 0 after a clean stop.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from mmplan.daemon.flow import FlowRunner
from mmplan.graph.compile import compile_topology
from mmplan.topology.loader import load_topology


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    topology = load_topology(sys.argv[1]).topology
    [flow] = compile_topology(topology).flows
    runner = FlowRunner(flow, topology)
    runner.set_topics(sys.argv[2:])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runner.run(stop)
    return 0 if runner.state == "stopped" else 1


if __name__ == "__main__":
    sys.exit(main())
