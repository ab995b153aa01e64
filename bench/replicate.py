"""Benchmark: replicating a prepared backlog with `mmplan run`, next to real MirrorMaker 2 (defaults and tuned)
and the machine's ceiling (Kafka's own ProducerPerformance and ConsumerPerformance).

    .venv/bin/python bench/replicate.py [--dir SANDBOX_DIR] [--records 1000000] [--sizes 1024,100]
                                        [--replicators mm2-defaults,mm2-tuned,mmplan[,mmplan-eos]] [--rounds 1]
    quick run:  .venv/bin/python bench/replicate.py --records 200000

Without --dir it starts a sandbox (two one-broker clusters, us-east and us-west) in a temporary directory and
stops it at the end. For each record size it:
1. creates a source topic with 8 partitions on us-east and fills it with ProducerPerformance (the produce
   ceiling row), then reads it back with ConsumerPerformance (the read ceiling row);
2. runs each replicator from us-east to us-west, each under a source alias of its own that points at us-east,
   so every run writes into fresh remote topics (`<alias>.<topic>`) and no run sees another's output:
   - MM2 defaults: `java -Xmx1g ... org.apache.kafka.connect.mirror.MirrorMaker mm2.properties` (dedicated mode)
     with only what a two-cluster sandbox needs (replication factors 1, a short topic refresh);
   - MM2 tuned, the rival: the same plus tasks.max=4, producer batch.size 256 KB and linger.ms 5, large fetches;
   - mmplan: `mmplan run <topology.yaml>` (a generated topology: the source alias and us-west, one flow with
     replication_factor 1, the two topics, heartbeats on), SIGTERM at the end; marked "not available" while
     `mmplan run --help` fails or the engine (mmplan.daemon.flow.FlowRunner) cannot be imported;
   - mmplan-eos (only when named in --replicators): the same with `mmplan run --exactly-once`. Its remote topic
     holds a transaction marker after every transaction, so its end offsets count records plus markers: the
     backlog counts as replicated when they reach the record count (the markers, one per transaction and
     partition, make that a little early), then the flow's group on the source must reach the source's end
     (committed only after each transaction), and the marker count is noted;
3. for each run measures: records/s and MB/s from the first replicated record to the last (the remote topic's
   end offsets sampled on us-west every --sample-ms), the time from launch to the first replicated record, the
   CPU seconds of the replicator's process tree from launch to the last backlog record, its peak RSS over the
   whole run, and then the end-to-end latency p50/p99 of --latency-records records produced at
   --latency-rate records/s into a second (empty at launch) topic the replicator also copies;
   then stops the replicator (SIGTERM, SIGKILL after --stop-timeout). With --rounds N the replicators run N
   times, alternating, and each figure is the median.

Prints the machine, then one markdown table per record size; every replicator figure also as a ratio to tuned
MirrorMaker 2's (value / tuned MM2's: above 1× is more for records/s and MB/s, slower/more for the others).
MB/s is MiB/s (2^20 bytes), as ProducerPerformance reports it. Progress goes to stderr, tables to stdout.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from procstat import TreeSampler  # noqa: E402

from mmplan import sandbox  # noqa: E402
from mmplan.mm2.properties import line  # noqa: E402
from mmplan.sandbox import maven  # noqa: E402
from mmplan.sandbox.java import find_java  # noqa: E402
from mmplan.sandbox.properties import log4j2_properties  # noqa: E402

SOURCE, TARGET = "us-east", "us-west"
PARTITIONS = 8
MIB = 2**20
REPLICATORS = ("mm2-defaults", "mm2-tuned", "mmplan")
OPTIONAL = ("mmplan-eos",)  # run only when named in --replicators
TITLES = {"mm2-defaults": "MM2 defaults", "mm2-tuned": "MM2 tuned", "mmplan": "mmplan",
          "mmplan-eos": "mmplan --exactly-once"}
SHORT = {"mm2-defaults": "mm2d", "mm2-tuned": "mm2t", "mmplan": "mmp", "mmplan-eos": "mmpe"}
MM2_HEAP = "-Xmx1g"
TOOL_HEAP = "-Xmx512m"
# ProducerPerformance settings for the produce ceiling (as in kafka-verified.md)
PRODUCER_PROPS = ["acks=1", "linger.ms=5", "batch.size=262144"]
# The rival's tuning (kafka-verified.md): tasks, producer batching, large consumer fetches.
MM2_TUNING = {
    "tasks.max": "4",
    "{target}.producer.batch.size": "262144",
    "{target}.producer.linger.ms": "5",
    "{source}.consumer.fetch.max.bytes": "67108864",
    "{source}.consumer.max.partition.fetch.bytes": "8388608",
    "{source}.consumer.max.poll.records": "10000",
}

MMPLAN_COMMAND = ""  # --mmplan-command
_running: list[subprocess.Popen] = []  # replicators and tools started by this script, stopped in `finally`


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# results


@dataclass
class Row:
    name: str
    replicator: bool = False
    rate: float | None = None  # records/s
    mbps: float | None = None  # MiB/s
    first: float | None = None  # s from launch to the first replicated record
    p50: float | None = None  # ms
    p99: float | None = None  # ms
    cpu: float | None = None  # s
    rss: float | None = None  # MB (MiB)
    note: str = ""

    def add_note(self, text: str) -> None:
        self.note = f"{self.note}; {text}" if self.note else text


def _num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def _ratio(v: float | None, ref: float | None) -> str:
    if v is None or ref is None or ref == 0:
        return ""
    return f" ({v / ref:.2f}×)" if v / ref < 10 else f" ({v / ref:.0f}×)"


def render_table(size: int, records: int, rows: list[Row]) -> str:
    tuned = next((r for r in rows if r.name == TITLES["mm2-tuned"]), None)

    def cell(r: Row, attr: str, digits: int) -> str:
        v = getattr(r, attr)
        ref = getattr(tuned, attr) if tuned is not None and r.replicator else None
        return _num(v, digits) + (_ratio(v, ref) if v is not None else "")

    out = [f"### {records:,} records of {size} B, {PARTITIONS} partitions",
           "",
           "| run | records/s | MB/s | first record (s) | latency p50 / p99 (ms) | CPU (s) | peak RSS (MB) | notes |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.p50 is None:
            lat = "—"
        else:
            lat = f"{r.p50:.1f} / {r.p99:.1f}"
            if r.replicator and tuned is not None and tuned.p50 and tuned.p99:
                lat += f" ({r.p50 / tuned.p50:.2f}× / {r.p99 / tuned.p99:.2f}×)"
        out.append(f"| {r.name} | {cell(r, 'rate', 0)} | {cell(r, 'mbps', 1)} | {cell(r, 'first', 1)} | {lat} "
                   f"| {cell(r, 'cpu', 1)} | {cell(r, 'rss', 0)} | {r.note} |")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------------
# processes


def start(argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start `argv` in its own process group, output to `log`; remembered for the final clean-up."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    _running.append(proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float) -> str:
    """SIGTERM the process group of `proc` (ours: started with its own session), SIGKILL after `timeout`."""
    note = ""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            note = f"did not exit within {timeout:.0f}s of SIGTERM, killed"
    # whatever is left in the group (children of a process that exited) goes too
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        note = note or "could not be killed"
    if proc in _running:
        _running.remove(proc)
    return note


def run_tool(argv: list[str], log: Path, timeout: float) -> tuple[str, TreeSampler, float, bool]:
    """Run a Java tool to completion (bounded); returns (its output, its sampler, wall seconds, finished)."""
    started = time.monotonic()
    proc = start(argv, log)
    sampler = TreeSampler(proc.pid).start()
    finished = True
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        finished = False
    sampler.cpu_seconds()
    sampler.stop()
    stop(proc, 10)
    return log.read_text(errors="replace"), sampler, time.monotonic() - started, finished


def log4j2_config(path: Path, logfile: Path) -> Path:
    """A log4j2 configuration logging WARN and above to `logfile` (what a quiet production setup keeps)."""
    path.write_text(log4j2_properties(logfile, "WARN") +
                    # the config values each client is created with (Kafka 4.x logs them under AbstractConfig),
                    # to check that the tuning reached MirrorMaker 2's task producers and consumers
                    "logger.config.name = org.apache.kafka.common.config.AbstractConfig\n"
                    "logger.config.level = info\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
# the machine


def machine_info(java: str) -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    try:
        jv = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
        jv = jv.strip().splitlines()[0] if jv.strip() else "?"
    except (OSError, subprocess.TimeoutExpired):
        jv = "?"
    import kafka

    import mmplan
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True,
                              text=True, timeout=30).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        head = "?"
    return [f"- CPU: {cpu}, {os.cpu_count()} cores; memory {mem}",
            f"- mmplan {mmplan.__version__} (git {head})",
            f"- Kafka {maven.KAFKA_VERSION} (brokers, tools, MirrorMaker 2: jars from Maven Central); {jv}",
            f"- Python {sys.version.split()[0]}, kafka-python {kafka.__version__}"]


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ---------------------------------------------------------------------------------------------------------------
# ceilings


_PERF_SUMMARY = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency")


def produce_ceiling(ctx: Context, topic: str, records: int, size: int) -> Row:
    row = Row("ProducerPerformance (ceiling)")
    cfg = log4j2_config(ctx.work / f"log4j2-pp-{size}.properties", ctx.work / f"pp-{size}.log4j.log")
    argv = [ctx.java, TOOL_HEAP, f"-Dlog4j2.configurationFile={cfg}", "-cp", ctx.cp,
            "org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", str(records),
            "--record-size", str(size), "--throughput", "-1", "--producer-props",
            f"bootstrap.servers={ctx.bootstrap(SOURCE)}", *PRODUCER_PROPS]
    out, sampler, wall, finished = run_tool(argv, ctx.work / f"pp-{size}.out", ctx.args.timeout)
    summary = _PERF_SUMMARY.findall(out)
    row.cpu, row.rss = sampler.cpu_seconds(), sampler.peak_rss_mb
    if not finished:
        row.add_note(f"did not finish within {ctx.args.timeout:.0f}s")
    if summary:
        sent, rate, mb, _avg = summary[-1]
        row.rate, row.mbps = float(rate), float(mb)
        if int(sent) != records:
            row.add_note(f"sent {int(sent):,} of {records:,}")
    else:
        row.add_note(f"no summary line (see {ctx.work / f'pp-{size}.out'})")
    row.add_note(f"acks=1, {PRODUCER_PROPS[1]}, batch 256 KB; {wall:.1f}s wall")
    return row


def consume_ceiling(ctx: Context, topic: str, records: int, size: int) -> Row:
    row = Row("ConsumerPerformance (ceiling)")
    cfg = log4j2_config(ctx.work / f"log4j2-cp-{size}.properties", ctx.work / f"cp-{size}.log4j.log")
    argv = [ctx.java, TOOL_HEAP, f"-Dlog4j2.configurationFile={cfg}", "-cp", ctx.cp,
            "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", ctx.bootstrap(SOURCE),
            "--topic", topic, "--messages", str(records), "--timeout", "30000",
            "--group", f"bench-perf-{ctx.run_id}-{size}"]
    out, sampler, wall, finished = run_tool(argv, ctx.work / f"cp-{size}.out", ctx.args.timeout)
    row.cpu, row.rss = sampler.cpu_seconds(), sampler.peak_rss_mb
    if not finished:
        row.add_note(f"did not finish within {ctx.args.timeout:.0f}s")
    # header: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
    #         rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    lines = [ln for ln in out.splitlines() if ln.count(",") >= 9 and not ln.startswith("start.time")]
    if lines:
        f = [x.strip() for x in lines[-1].split(",")]
        consumed = int(float(f[4]))
        row.rate, row.mbps = float(f[9]), float(f[8])
        row.add_note(f"fetch time only (excl. {float(f[6]) / 1000:.1f}s group join); {wall:.1f}s wall")
        if consumed < records:
            row.add_note(f"read {consumed:,} of {records:,}")
    else:
        row.add_note(f"no result line (see {ctx.work / f'cp-{size}.out'})")
    return row


# ---------------------------------------------------------------------------------------------------------------
# replicators


class Context:
    def __init__(self, args, sb, work: Path, java: str, cp: str):
        self.args, self.sb, self.work, self.java, self.cp = args, sb, work, java, cp
        self.run_id = uuid.uuid4().hex[:6]
        self.admins = {a: KafkaAdminClient(**sb.kafka_config(a), client_id=f"bench-{a}") for a in (SOURCE, TARGET)}

    def bootstrap(self, alias: str) -> str:
        return self.sb.cluster(alias).bootstrap_servers

    def create_topic(self, name: str, partitions: int = PARTITIONS) -> None:
        self.admins[SOURCE].create_topics([NewTopic(name, partitions, 1)], timeout_ms=60000)
        deadline = time.monotonic() + 60
        consumer = KafkaConsumer(**self.sb.kafka_config(SOURCE))
        try:
            while len(consumer.partitions_for_topic(name)) < partitions:
                if time.monotonic() > deadline:
                    raise SystemExit(f"topic {name} did not show {partitions} partitions within 60s")
                time.sleep(0.2)
        finally:
            consumer.close()

    def close(self) -> None:
        for a in self.admins.values():
            a.close()


def mm2_properties(ctx: Context, alias: str, topics: list[str], tuned: bool) -> str:
    regex = "|".join(re.escape(t) for t in topics)
    props = {
        "clusters": f"{alias}, {TARGET}",
        f"{alias}.bootstrap.servers": ctx.bootstrap(SOURCE),
        f"{TARGET}.bootstrap.servers": ctx.bootstrap(TARGET),
        f"{alias}->{TARGET}.enabled": "true",
        f"{alias}->{TARGET}.topics": regex,
        f"{TARGET}->{alias}.enabled": "false",
        "replication.factor": "1",
        "checkpoints.topic.replication.factor": "1",
        "heartbeats.topic.replication.factor": "1",
        "offset-syncs.topic.replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "config.storage.replication.factor": "1",
        "refresh.topics.interval.seconds": "5",
    }
    if tuned:
        props.update({k.format(source=alias, target=TARGET): v for k, v in MM2_TUNING.items()})
    return "".join(line(k, v) + "\n" for k, v in props.items())


def mmplan_topology(ctx: Context, alias: str, topics: list[str]) -> str:
    import yaml

    def servers(a: str) -> list[str]:
        return ctx.bootstrap(a).split(",")

    doc = {
        "version": 1,
        "defaults": {"replication_factor": 1},
        "clusters": {alias: {"bootstrap_servers": servers(SOURCE), "brokers": 1},
                     TARGET: {"bootstrap_servers": servers(TARGET), "brokers": 1}},
        "flows": [{"source": alias, "target": TARGET, "replication_factor": 1,
                   "topics": {"include": [re.escape(t) for t in topics]},
                   "heartbeats": {"enabled": True}}],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def mmplan_command() -> list[str] | None:
    if MMPLAN_COMMAND:
        return shlex.split(MMPLAN_COMMAND)
    exe = Path(sys.executable).parent / "mmplan"
    found = str(exe) if exe.exists() else shutil.which("mmplan")
    return [found] if found else None


def mmplan_available() -> tuple[bool, str]:
    cmd = mmplan_command()
    if not cmd:
        return False, "no `mmplan` executable"
    try:
        done = subprocess.run([*cmd, "run", "--help"], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"`mmplan run --help` failed: {e}"
    if done.returncode != 0:
        return False, "not available (`mmplan run --help` fails: no `run` command yet)"
    if MMPLAN_COMMAND:
        return True, ""
    # `run` can exist before the engine does (it then exits 1 at once): ask for the engine too
    probe = subprocess.run([sys.executable, "-c", "from mmplan.daemon.flow import FlowRunner"],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        return False, "not available (`mmplan run` exists, the engine mmplan.daemon.flow.FlowRunner not yet)"
    return True, ""


class OffsetWatch:
    """The summed end offsets of a (remote) topic on the target, sampled by a kafka-python consumer."""

    def __init__(self, ctx: Context, topic: str):
        self.topic = topic
        self.consumer = KafkaConsumer(**ctx.sb.kafka_config(TARGET), client_id="bench-watch",
                                      request_timeout_ms=10000)
        self.partitions: list[TopicPartition] = []

    def count(self) -> int | None:
        """Records in the topic now, or None while it does not exist with all its partitions."""
        if len(self.partitions) < PARTITIONS:
            found = self.consumer.partitions_for_topic(self.topic)
            if len(found) < PARTITIONS:
                return None
            self.partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
        return sum(self.consumer.end_offsets(self.partitions, timeout_ms=10000).values())

    def close(self) -> None:
        self.consumer.close()


def measure_latency(ctx: Context, topic: str, remote: str, size: int, row: Row, alive) -> None:
    """Produce --latency-records (after --latency-warmup) at --latency-rate into `topic` on the source, read them
    from `remote` on the target; latency = receive time - send time carried in the value."""
    args = ctx.args
    total = args.latency_warmup + args.latency_records
    consumer = KafkaConsumer(**ctx.sb.kafka_config(TARGET), client_id="bench-latency", fetch_max_wait_ms=100,
                             enable_auto_commit=False, isolation_level="read_committed")
    deadline = time.monotonic() + 60
    while len(consumer.partitions_for_topic(remote)) < PARTITIONS:
        if time.monotonic() > deadline or not alive():
            consumer.close()
            row.add_note("latency: the remote latency topic never appeared")
            return
        time.sleep(0.25)
    tps = [TopicPartition(remote, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    received: dict[int, float] = {}
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for records in consumer.poll(timeout_ms=50).values():
                now = time.time()
                for rec in records:
                    if rec.value and len(rec.value) >= 12:
                        seq, sent = struct.unpack_from(">Id", rec.value)
                        received.setdefault(seq, (now - sent) * 1000)

    reader = threading.Thread(target=read, name="latency-reader", daemon=True)
    reader.start()
    producer = KafkaProducer(**ctx.sb.kafka_config(SOURCE), client_id="bench-latency", linger_ms=0, acks=1)
    pad = b"x" * max(0, size - 12)
    try:
        t0 = time.monotonic()
        for i in range(total):
            delay = t0 + i / args.latency_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.send(topic, struct.pack(">Id", i, time.time()) + pad)
        producer.flush(timeout=30)
        deadline = time.monotonic() + 30
        while len(received) < total and time.monotonic() < deadline and alive():
            time.sleep(0.1)
    finally:
        done.set()
        reader.join(timeout=10)
        producer.close(timeout=10)
        consumer.close()
    lat = sorted(v for k, v in received.items() if k >= args.latency_warmup)
    if lat:
        row.p50 = lat[max(0, round(0.50 * len(lat)) - 1)]
        row.p99 = lat[max(0, round(0.99 * len(lat)) - 1)]
    missing = args.latency_records - len(lat)
    if missing:
        row.add_note(f"latency: {missing} of {args.latency_records} records not replicated within 30s")


def median_row(rows: list[Row]) -> Row:
    """One row from several rounds of the same replicator: the median of each figure."""
    if len(rows) == 1:
        return rows[0]
    out = Row(rows[0].name, replicator=True)
    for attr in ("rate", "mbps", "first", "p50", "p99", "cpu", "rss"):
        values = [getattr(r, attr) for r in rows if getattr(r, attr) is not None]
        setattr(out, attr, statistics.median(values) if values else None)
    out.add_note(f"median of {len(rows)} rounds, records/s " + " / ".join(_num(r.rate) for r in rows))
    for i, r in enumerate(rows, 1):
        kept = [n for n in r.note.split("; ") if n and not n.startswith(("all records", "tuning seen"))]
        if kept:
            out.add_note(f"round {i}: " + "; ".join(kept))
    return out


def run_replicator(ctx: Context, kind: str, size: int, topic: str, records: int, round_no: int = 1) -> Row:
    args = ctx.args
    row = Row(TITLES[kind], replicator=True)
    alias = f"{SHORT[kind]}{round_no}-{ctx.run_id}-{size}"
    lat_topic = f"bench.lat.{alias}"
    ctx.create_topic(lat_topic)
    remote, remote_lat = f"{alias}.{topic}", f"{alias}.{lat_topic}"
    run_dir = ctx.work / alias
    run_dir.mkdir()
    eos = kind == "mmplan-eos"
    if kind in ("mmplan", "mmplan-eos"):
        ok, why = mmplan_available()
        if not ok:
            row.add_note(why)
            return row
        topology = run_dir / "topology.yaml"
        topology.write_text(mmplan_topology(ctx, alias, [topic, lat_topic]))
        argv = [*mmplan_command(), "run", str(topology), *(["--exactly-once"] if eos else []),
                *shlex.split(args.mmplan_args)]
    else:
        props = run_dir / "mm2.properties"
        props.write_text(mm2_properties(ctx, alias, [topic, lat_topic], tuned=kind == "mm2-tuned"))
        cfg = log4j2_config(run_dir / "log4j2.properties", run_dir / "mm2.log")
        argv = [ctx.java, MM2_HEAP, f"-Dlog4j2.configurationFile={cfg}", "-cp", ctx.cp,
                "org.apache.kafka.connect.mirror.MirrorMaker", str(props)]
    say(f"{row.name}, {size} B: launching ({run_dir})")
    watch = OffsetWatch(ctx, remote)
    launched = time.monotonic()
    proc = start(argv, run_dir / "stdout.log")
    sampler = TreeSampler(proc.pid).start()
    try:
        first_t = first_n = done_t = None
        deadline = launched + args.timeout
        last_report = launched
        n = 0
        while True:
            now = time.monotonic()
            if proc.poll() is not None:
                row.add_note(f"exited with code {proc.returncode} after {now - launched:.0f}s: "
                             f"{last_line(run_dir / 'stdout.log')} (see {run_dir / 'stdout.log'})")
                break
            if now > deadline:
                row.add_note(f"timed out after {args.timeout:.0f}s with {n:,} of {records:,} records replicated")
                break
            try:
                n = watch.count() or 0
            except Exception as e:  # noqa: BLE001 - a slow broker answer is retried at the next sample
                say(f"  offset sample failed: {e!r}")
            t = time.monotonic()
            if n > 0 and first_t is None:
                first_t, first_n = t, n
                row.first = t - launched
                say(f"  first replicated record after {row.first:.1f}s")
            if n >= records:
                done_t = t
                break
            if t - last_report > 5:
                say(f"  {n:,} of {records:,} replicated")
                last_report = t
            time.sleep(max(0.0, args.sample_ms / 1000 - (time.monotonic() - now)))
        if done_t is not None:
            row.cpu = sampler.cpu_seconds()
            if done_t > first_t:
                row.rate = (records - first_n) / (done_t - first_t)
                row.mbps = row.rate * size / MIB
            else:
                row.add_note("the whole backlog arrived within one sample")
            say(f"  {records:,} replicated in {done_t - launched:.1f}s after launch: "
                f"{_num(row.rate)} records/s, CPU {row.cpu:.1f}s")
            row.add_note(f"all records {done_t - launched:.1f}s after launch")
            try:
                measure_latency(ctx, lat_topic, remote_lat, size, row, lambda: proc.poll() is None)
            except Exception as e:  # noqa: BLE001 - the other figures of the row stand
                row.add_note(f"latency measurement failed: {e!r}")
            if row.p50 is not None:
                say(f"  latency p50 {row.p50:.1f} ms, p99 {row.p99:.1f} ms")
            if eos:
                note_transactions(ctx, alias, topic, records, watch, row)
            else:
                try:
                    extra = (watch.count() or 0) - records
                except Exception:  # noqa: BLE001
                    extra = 0
                if extra > 0:
                    row.add_note(f"{extra:,} records more than the source on the target (duplicates)")
        else:
            row.cpu = sampler.cpu_seconds()
    finally:
        sampler.sample()
        note = stop(proc, args.stop_timeout)
        sampler.stop()
        row.rss = sampler.peak_rss_mb
        watch.close()
        if note:
            row.add_note(note)
        if kind == "mm2-tuned":
            row.add_note(tuning_check(run_dir / "mm2.log"))
    return row


def note_transactions(ctx: Context, alias: str, topic: str, records: int, watch: OffsetWatch, row: Row) -> None:
    """Exactly-once: wait until the flow's group on the source holds the source's end (committed after each
    transaction); then the target's end offsets beyond the record count are transaction markers."""
    admin = KafkaAdminClient(**ctx.sb.kafka_config(SOURCE), client_id="bench-eos")
    group = f"{alias}->{TARGET}"
    try:
        deadline = time.monotonic() + 60
        committed = 0
        while time.monotonic() < deadline:
            offsets = admin.list_group_offsets(group).get(group, {})
            committed = sum(m.offset for tp, m in offsets.items() if tp.topic == topic)
            if committed >= records:
                break
            time.sleep(0.2)
    finally:
        admin.close()
    if committed < records:
        row.add_note(f"the group {group} holds {committed:,} of {records:,} after 60s")
    try:
        markers = (watch.count() or 0) - records
        row.add_note(f"{markers:,} transaction markers on the target")
    except Exception:  # noqa: BLE001 - only a note
        pass


def tuning_check(log: Path) -> str:
    """Whether MM2's own client-config log lines show the tuned producer and consumer settings."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "tuning not checked (no MM2 log)"
    wanted = ["batch.size = 262144", "linger.ms = 5", "max.partition.fetch.bytes = 8388608",
              "max.poll.records = 10000"]
    missing = [w for w in wanted if w not in text]
    return f"tuning NOT seen in MM2's client configs: {', '.join(missing)}" if missing else \
        "tuning seen in MM2's client configs"


def last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return (lines[-1][:200] if lines else "no output").replace("|", "/")


# ---------------------------------------------------------------------------------------------------------------


def cleanup_topics(ctx: Context) -> None:
    """Delete the topics this run made (names carry the run id), on both clusters; best effort."""
    for alias, admin in ctx.admins.items():
        try:
            mine = [t for t in admin.list_topics() if ctx.run_id in t]
            for i in range(0, len(mine), 100):
                admin.delete_topics(mine[i:i + 100], timeout_ms=60000)
            say(f"deleted {len(mine)} topic(s) of this run on {alias}")
        except Exception as e:  # noqa: BLE001
            say(f"could not delete this run's topics on {alias}: {e!r}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", help="an already running `mmplan sandbox up` directory (plaintext, us-east and "
                                      "us-west); its topics made by this run are deleted at the end")
    parser.add_argument("--records", default="1000000",
                        help="records per topic, one number or one per size (e.g. 1000000,2000000)")
    parser.add_argument("--sizes", default="1024,100", help="record sizes in bytes")
    parser.add_argument("--replicators", default=",".join(REPLICATORS),
                        help="which replicator rows to run, in this order (also: mmplan-eos, `mmplan run "
                             "--exactly-once`)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the replicators this many times, alternating, and show the median of each figure")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds a replicator (or a ceiling tool) gets for the whole backlog")
    parser.add_argument("--stop-timeout", type=float, default=30, help="seconds from SIGTERM to SIGKILL")
    parser.add_argument("--sample-ms", type=float, default=50, help="end-offset sampling interval")
    parser.add_argument("--latency-records", type=int, default=500)
    parser.add_argument("--latency-rate", type=float, default=100, help="records/s for the latency phase")
    parser.add_argument("--latency-warmup", type=int, default=20, help="records sent first and not counted")
    parser.add_argument("--mmplan-args", default="", help="extra arguments for `mmplan run`")
    parser.add_argument("--mmplan-command", default="",
                        help="the mmplan executable to use (default: the venv's `mmplan`); given, the engine "
                             "check is skipped and only `<command> run --help` must work")
    parser.add_argument("--keep-topics", action="store_true", help="with --dir: keep this run's topics")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(s) for s in args.records.split(",")]
    if len(counts) not in (1, len(args.sizes)):
        parser.error("--records takes one number or one per size")
    args.records = counts * len(args.sizes) if len(counts) == 1 else counts
    args.replicators = [r.strip() for r in args.replicators.split(",") if r.strip()]
    for r in args.replicators:
        if r not in REPLICATORS + OPTIONAL:
            parser.error(f"unknown replicator {r!r}: choose from {', '.join(REPLICATORS + OPTIONAL)}")
    return args


def _on_sigterm(_signo, _frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    global MMPLAN_COMMAND
    MMPLAN_COMMAND = args.mmplan_command
    signal.signal(signal.SIGTERM, _on_sigterm)
    java = find_java()
    cp = maven.classpath()
    own = args.dir is None
    base = Path(args.dir).resolve() if args.dir else Path(tempfile.mkdtemp(prefix="mmplan-bench-"))
    directory = base / "sandbox" if own else base
    work = Path(tempfile.mkdtemp(prefix="mmplan-bench-replicate-"))
    header = ["## Machine", "", *machine_info(java)]
    tables: list[str] = []
    ctx = None
    status = 0
    try:
        if own:
            say(f"starting a sandbox in {directory}")
            sb = sandbox.up(directory, aliases=[SOURCE, TARGET], progress=say).sandbox
        else:
            sb = sandbox.load(directory)
        if sb.security != "plaintext":
            raise SystemExit("the benchmark needs a plaintext sandbox")
        ctx = Context(args, sb, work, java, cp)
        header.append(f"- load average at start: {load_average()} (uptime)")
        say(f"run id {ctx.run_id}; work files in {work}")
        for size, records in zip(args.sizes, args.records, strict=True):
            topic = f"bench.r{size}.{ctx.run_id}"
            ctx.create_topic(topic)
            say(f"{size} B: ProducerPerformance fills {topic} with {records:,} records")
            rows = [produce_ceiling(ctx, topic, records, size)]
            say(f"  {_num(rows[-1].rate)} records/s; ConsumerPerformance reads it back")
            rows.append(consume_ceiling(ctx, topic, records, size))
            say(f"  {_num(rows[-1].rate)} records/s")
            runs: dict[str, list[Row]] = {kind: [] for kind in args.replicators}
            for round_no in range(1, args.rounds + 1):
                if args.rounds > 1:
                    say(f"round {round_no} of {args.rounds}")
                for kind in args.replicators:
                    if runs[kind] and "not available" in runs[kind][-1].note:
                        continue
                    try:
                        runs[kind].append(run_replicator(ctx, kind, size, topic, records, round_no))
                    except Exception as e:  # noqa: BLE001 - one failed row must not lose the others
                        say(f"{TITLES[kind]}: failed: {e!r}")
                        runs[kind].append(Row(TITLES[kind], replicator=True, note=f"failed: {e!r}"[:300]))
            rows.extend(median_row(runs[kind]) for kind in args.replicators)
            table = render_table(size, records, rows)
            table += f"\n\nload average after this table: {load_average()}"
            tables.append(table)
            print(table + "\n", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        say("interrupted: stopping everything")
        status = 130
    finally:
        for proc in list(_running):
            stop(proc, 10)
        if ctx is not None:
            if not own and not args.keep_topics:
                cleanup_topics(ctx)
            ctx.close()
        if own:
            say("stopping the sandbox")
            sandbox.down(directory)
            shutil.rmtree(base, ignore_errors=True)
    print("\n".join(header) + "\n")
    print("\n\n".join(tables))
    print("\nRatios in parentheses are value / tuned MM2's in the same run. Replicator rows: records/s and MB/s "
          "from the first replicated record to the last (remote topic end offsets sampled every "
          f"{args.sample_ms:.0f} ms); first record = launch to first replicated record; CPU = utime+stime of the "
          "process tree from launch to the last backlog record; peak RSS = largest sum over the tree during the "
          f"run; latency = {args.latency_records} records at {args.latency_rate:.0f} records/s after the backlog, "
          "send (source) to receive (remote topic), one clock. Ceiling rows: the tools' own figures; their CPU/RSS "
          f"are the tool JVM's ({TOOL_HEAP}). MM2: java {MM2_HEAP}, dedicated mode, WARN logging; tuned adds "
          + ", ".join(f"{k.format(source='<source>', target='<target>')}={v}" for k, v in MM2_TUNING.items())
          + f". Work files: {work}")
    return status


if __name__ == "__main__":
    sys.exit(main())
