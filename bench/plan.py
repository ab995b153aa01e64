"""Benchmark: how long `mmplan plan` takes, and how many admin requests it sends, for 100, 1,000 and
10,000 source topics, next to the bare kafka-python admin calls the same reads need.

    .venv/bin/python bench/plan.py [--dir SANDBOX_DIR] [--sizes 100,1000,10000]

Without --dir it starts a two-cluster sandbox in a temporary directory and stops it at the end.
Each source topic has one partition and one config set on it; the target starts empty, so the
plan creates every remote topic. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kafka.admin import (
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewTopic,
    ResourcePatternFilter,
    ResourceType,
)

from mmplan import sandbox
from mmplan.apply.workflow import plan_topology
from mmplan.kafka.admin import DESCRIBE_CONFIGS_BATCH, Admin
from mmplan.topology.loader import load_topology

ROUNDS = 3


def ensure_topics(admin: KafkaAdminClient, total: int) -> None:
    """Create bench.t00000 ... up to `total` topics (those missing), in batches."""
    existing = {t for t in admin.list_topics() if t.startswith("bench.")}
    missing = [f"bench.t{i:05d}" for i in range(total) if f"bench.t{i:05d}" not in existing]
    for start in range(0, len(missing), 500):
        admin.create_topics([NewTopic(name, 1, 1, topic_configs={"retention.ms": "86400000"})
                             for name in missing[start:start + 500]], timeout_ms=120000)
    deadline = time.monotonic() + 300
    while sum(t.startswith("bench.") for t in admin.list_topics()) < total:
        if time.monotonic() > deadline:
            raise SystemExit(f"the broker did not show {total} bench topics within 5 minutes")
        time.sleep(0.5)


def bare_reads(config: dict) -> tuple[float, int]:
    """The same reads with plain kafka-python calls: cluster, metadata, configs, ACLs. (seconds, calls)"""
    started = time.perf_counter()
    admin = KafkaAdminClient(**config)
    calls = 1
    admin.describe_cluster()
    names = admin.list_topics()
    admin.describe_topics(names)
    calls += 2
    for start in range(0, len(names), DESCRIBE_CONFIGS_BATCH):
        admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n)
                                for n in names[start:start + DESCRIBE_CONFIGS_BATCH]])
        calls += 1
    admin.describe_acls(ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                                  permission_type=ACLPermissionType.ANY,
                                  resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, None,
                                                                         ACLResourcePatternType.ANY)))
    calls += 1
    admin.close()
    return time.perf_counter() - started, calls


def mmplan_requests(topology, aliases: list[str]) -> int:
    """Admin requests mmplan's reads send (connection set-up included)."""
    total = 0
    for alias in aliases:
        with Admin.connect(alias, topology.clusters[alias]) as admin:
            admin.cluster_info()
            admin.read_state()
            total += admin.requests
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="an already running `mmplan sandbox up` directory")
    parser.add_argument("--sizes", default="100,1000,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    own = args.dir is None
    directory = Path(args.dir or tempfile.mkdtemp(prefix="mmplan-bench-")) / "sandbox"
    sb = sandbox.up(directory).sandbox if own else sandbox.load(Path(args.dir))
    try:
        file = sb.dir / "topology.yaml"
        source = KafkaAdminClient(**sb.kafka_config("us-east"))
        rows = []
        for n in sizes:
            started = time.perf_counter()
            ensure_topics(source, n)
            print(f"{n} source topics ready ({time.perf_counter() - started:.1f}s)", file=sys.stderr)
            loaded = load_topology(file)
            plan_s, changes = [], 0
            for _ in range(ROUNDS):
                t = time.perf_counter()
                live = plan_topology(loaded)
                plan_s.append(time.perf_counter() - t)
                changes = len(live.plan.changes)
            requests = mmplan_requests(loaded.topology, ["us-east", "us-west"])
            bare = [sum(bare_reads(sb.kafka_config(a))[0] for a in ("us-east", "us-west")) for _ in range(ROUNDS)]
            bare_calls = sum(bare_reads(sb.kafka_config(a))[1] for a in ("us-east", "us-west"))
            rows.append((n, statistics.median(plan_s), changes, requests, statistics.median(bare), bare_calls))
        source.close()
    finally:
        if own:
            sandbox.down(directory)
    print("| source topics | mmplan plan (s) | changes planned | mmplan admin requests "
          "| bare kafka-python reads (s) | bare admin calls |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, plan_s, changes, requests, bare_s, calls in rows:
        print(f"| {n:,} | {plan_s:.2f} | {changes:,} | {requests} | {bare_s:.2f} | {calls} |")
    print(f"\nmedian of {ROUNDS} rounds; plan = offline checks + connect + read both clusters concurrently + diff; "
          "bare = the same reads with plain kafka-python, one cluster after the other.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
