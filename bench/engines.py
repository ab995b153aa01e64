"""Benchmark: the same flow run by each engine, in one run: `engine: connect` (MirrorMaker 2's connectors on a
real Kafka Connect worker, tasks_max 1 and 4) and `engine: daemon` (`mmplan run`).

    .venv/bin/python bench/engines.py [--records 1000000] [--size 1000]

Starts its own sandbox (two one-broker clusters and one Connect worker, `mmplan sandbox up --connect`) under a
temporary directory and stops it at the end. Each row gets a fresh 8-partition topic filled by Kafka's
ProducerPerformance, then the flow is applied (connect) or run (daemon); records/s is measured from the first
replicated record to the last, from the remote topic's end offsets. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition

from mmplan import sandbox
from mmplan.kafka.connect import ConnectClient
from mmplan.sandbox import maven

MMPLAN = str(Path(sys.executable).with_name("mmplan"))
ROWS = (("connect", 1), ("connect", 4), ("daemon", None))


def fill(bootstrap: str, topic: str, records: int, size: int) -> None:
    KafkaAdminClient(bootstrap_servers=bootstrap).create_topics([NewTopic(topic, 8, 1)])
    subprocess.run(["java", "-Xmx512m", "-cp", maven.classpath(), "org.apache.kafka.tools.ProducerPerformance",
                    "--topic", topic, "--num-records", str(records), "--record-size", str(size),
                    "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}", "linger.ms=5",
                    "batch.size=262144"], check=True, stdout=subprocess.DEVNULL)


def replicated(consumer: KafkaConsumer, topic: str) -> int:
    consumer.poll(0)  # refreshes metadata for topics created meanwhile
    parts = consumer.partitions_for_topic(topic) or set()
    return sum(consumer.end_offsets([TopicPartition(topic, p) for p in parts]).values()) if parts else 0


def measure(bootstrap: str, topic: str, records: int, timeout: float) -> tuple[float, float]:
    """(seconds from start to the first replicated record, records/s from the first to the last)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    start, first = time.monotonic(), None
    try:
        while time.monotonic() - start < timeout:
            n, now = replicated(consumer, topic), time.monotonic()
            if n and first is None:
                first = (now, n)
            if n >= records:
                return first[0] - start, (records - first[1]) / max(now - first[0], 1e-3)
            time.sleep(0.05)
    finally:
        consumer.close()
    raise SystemExit(f"{topic}: not replicated within {timeout:g}s")


def topology(run_id: str, east: str, west: str, topic: str, engine: str, tasks: int | None, url: str) -> str:
    extra = ""
    if engine == "connect":
        extra = f"    engine: connect\n    connect: {{urls: ['{url}'], name_prefix: 'b{run_id}-'}}\n"
        extra += f"    tasks_max: {tasks}\n"
    return f"""version: 1
defaults: {{replication_factor: 1}}
clusters:
  e{run_id}: {{bootstrap_servers: '{east}'}}
  w{run_id}: {{bootstrap_servers: '{west}'}}
flows:
  - source: e{run_id}
    target: w{run_id}
    topics: {{include: ['{topic}']}}
{extra}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=1000, help="record size in bytes")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmplan-bench-engines-"))
    sb = sandbox.up(work / "sandbox", ["east", "west"], connect=True).sandbox
    east, west = sb.cluster("east").bootstrap_servers, sb.cluster("west").bootstrap_servers
    rows = []
    try:
        for engine, tasks in ROWS:
            run_id = uuid.uuid4().hex[:5]
            topic = f"bench{run_id}"
            fill(east, topic, args.records, args.size)
            path = work / f"{run_id}.yaml"
            path.write_text(topology(run_id, east, west, topic, engine, tasks, sb.connect.url))
            proc = None
            if engine == "connect":
                subprocess.run([MMPLAN, "apply", str(path), "--auto-approve"], check=True, stdout=subprocess.DEVNULL)
            else:
                proc = subprocess.Popen([MMPLAN, "run", str(path)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            first, rate = measure(west, f"e{run_id}.{topic}", args.records, args.timeout)
            rows.append((engine, tasks, first, rate))
            print(f"{engine}{f' tasks_max={tasks}' if tasks else ''}: {rate:,.0f} records/s", file=sys.stderr,
                  flush=True)
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
            else:
                client = ConnectClient([sb.connect.url])
                for name in client.connectors():
                    client.delete(name)
    finally:
        sandbox.down(work / "sandbox")
    print(f"{args.records:,} records of {args.size} B, 8 partitions\n")
    print("| engine | records/s | MB/s | first record (s) |\n|---|---:|---:|---:|")
    for engine, tasks, first, rate in rows:
        name = f"connect, tasks_max {tasks}" if engine == "connect" else "daemon (`mmplan run`)"
        print(f"| {name} | {rate:,.0f} | {rate * args.size / 1e6:.1f} | {first:.1f} |")
    print("\nfirst record: from `mmplan run`'s launch (daemon), from `mmplan apply`'s return (connect: the "
          "connectors were created and listed by then)")


if __name__ == "__main__":
    main()
