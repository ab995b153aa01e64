"""`mmplan run` as a GitOps reconciler on the sandbox pair: the topology from a local bare git repository, a
reload when the file changes, held destructive changes reported as pending drift, and one applier among several
daemons, taken over when it is killed."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import threading
import time

import pytest
from click.testing import CliRunner
from kafka import TopicPartition
from kafka.admin import NewTopic
from test_run import Case

from mmplan.cli import main

pytestmark = pytest.mark.kafka


def git(cwd, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


class GitCase(Case):
    """A Case whose topology lives in a bare repository, pushed from a working clone."""

    def __init__(self, tmp_path, kafka_pair, clients):
        super().__init__(tmp_path, kafka_pair, clients)
        self.bare, self.work = tmp_path / "origin.git", tmp_path / "work"
        subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(self.bare)], check=True)
        subprocess.run(["git", "clone", "--quiet", str(self.bare), str(self.work)], check=True, capture_output=True)
        git(self.work, "config", "user.email", "ci@example.com")
        git(self.work, "config", "user.name", "ci")
        git(self.work, "checkout", "--quiet", "-b", "main")

    def push(self, text: str) -> str:
        (self.work / "kafka").mkdir(exist_ok=True)
        (self.work / "kafka" / "topology.yaml").write_text(text)
        git(self.work, "add", "kafka/topology.yaml")
        git(self.work, "commit", "--quiet", "-m", "topology")
        git(self.work, "push", "--quiet", "origin", "main")
        return git(self.work, "rev-parse", "HEAD").strip()

    def run_git(self, *args: str):
        return self.run("--git", str(self.bare), "--ref", "main", "--path", "kafka/topology.yaml",
                        "--git-dir", str(self.tmp / "clone"), *args)


@pytest.fixture
def case(tmp_path, kafka_pair, clients):
    c = GitCase(tmp_path, kafka_pair, clients)
    yield c
    c.close()


def produce(case: Case, name: str, n: int, start: int = 0, cluster: str = "us-east", topic: str | None = None) -> None:
    producer = case.clients.producer(case.pair.kafka_config(cluster))
    for i in range(start, start + n):
        producer.send(topic or case.topic(name), key=b"k%d" % i, value=b"v%d" % i)
    producer.flush()


def count(case: Case, topic: str, cluster: str = "us-west") -> int:
    admin = case.west if cluster == "us-west" else case.east
    try:
        offsets = admin.list_partition_offsets({TopicPartition(topic, 0): -1})
    except Exception:  # noqa: BLE001 - not there yet
        return -1
    return next(iter(offsets.values())).offset


def wait_count(case: Case, topic: str, n: int, timeout: float = 20.0, cluster: str = "us-west") -> float:
    """Seconds until `topic` holds `n` records."""
    started = time.monotonic()
    while count(case, topic, cluster) < n:
        assert time.monotonic() - started < timeout, f"{topic} has {count(case, topic, cluster)} of {n} records"
        time.sleep(0.2)
    return time.monotonic() - started


def metric(daemon, name: str, **labels: str) -> float | None:
    _, body = daemon.get("/metrics")
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def include(case: Case, pattern: str) -> str:
    return case.file.read_text().replace(f'include: ["p{case.id}\\\\..*"]', f'include: ["{pattern}"]')


def test_commits_are_reconciled_and_a_broken_one_keeps_the_last_good(case):
    for name in ("a", "b"):
        case.create(name)
        produce(case, name, 50)
    first = case.push(include(case, f"p{case.id}\\\\.a"))
    daemon = case.run_git("--reconcile-interval", "2s")
    wait_count(case, case.remote("a"), 50)
    assert count(case, case.remote("b")) == -1
    assert metric(daemon, "mmplan_topology_info", source="git", version=first) == 1

    # a commit that adds a topic to the flow's filters: created and filled within an interval or two
    second = case.push(include(case, f"p{case.id}\\\\.(a|b)"))
    assert wait_count(case, case.remote("b"), 50, timeout=10) < 8
    daemon.wait_log(lambda d: d.get("msg", "").startswith("topology reloaded") and d.get("version") == second)

    # a broken commit: the daemon reports it and goes on with the last good topology
    case.push("version: 1\nclusters: {}\nflows: [{source: nowhere, target: nowhere-else}]\n")
    daemon.wait_log(lambda d: d.get("level") == "error" and "cannot be used" in d.get("msg", ""))
    _, health = daemon.get("/healthz")
    assert '"stale": "error[schema]' in health and "clusters" in health
    produce(case, "a", 10, start=50)
    wait_count(case, case.remote("a"), 60)

    # a good commit adding a second flow: it starts while the first keeps replicating, without a restart
    reverse = (f"  - source: w{case.id}\n    target: e{case.id}\n    topics: {{include: [\"q{case.id}\\\\..*\"]}}\n"
               f"    heartbeats: {{topic: hb-{case.id}}}\n")
    q = f"q{case.id}.x"
    case.west.create_topics([NewTopic(q, 1, 1)])
    produce(case, "", 30, cluster="us-west", topic=q)
    stop_feeding = threading.Event()

    def feed() -> None:  # the first flow's records keep coming during the reconcile
        i = 60
        while not stop_feeding.is_set():
            produce(case, "a", 5, start=i)
            i += 5
            time.sleep(0.2)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        before = count(case, case.remote("a"))
        restarts = len([d for d in daemon.lines() if "restarting" in d.get("msg", "")])  # the filter change's
        third = case.push(include(case, f"p{case.id}\\\\.(a|b)") + reverse)
        wait_count(case, f"w{case.id}.{q}", 30, cluster="us-east", timeout=15)
        assert count(case, case.remote("a")) > before
    finally:
        stop_feeding.set()
        feeder.join(5)
    assert metric(daemon, "mmplan_topology_info", source="git", version=third) == 1
    assert len([d for d in daemon.lines() if "restarting" in d.get("msg", "")]) == restarts
    code, _ = daemon.stop()
    assert code == 0


def test_a_destructive_change_is_held_and_reported_as_pending_drift(case):
    case.create("gone")
    produce(case, "gone", 5)
    daemon = case.run("--reconcile-interval", "60s")
    wait_count(case, case.remote("gone"), 5)
    case.east.delete_topics([case.topic("gone")])
    deadline = time.monotonic() + 20
    while case.topic("gone") in case.east.list_topics():  # the brokers show the deletion a little later
        assert time.monotonic() < deadline, "the source topic was not deleted"
        time.sleep(0.2)
    # a change of the file is picked up at once, not at the next interval
    case.file.write_text(case.file.read_text() + "# touched\n")
    daemon.wait_log(lambda d: d.get("msg", "").startswith("held:") and case.remote("gone") in d.get("msg", ""))
    assert metric(daemon, "mmplan_changes_pending", cluster=case.dst, kind="delete_topic", reason="held") == 1
    assert case.remote("gone") in case.west.list_topics()  # never deleted by the daemon
    # `mmplan status` shows what the reconcile reports: the version running, the applier, the held delete
    version = hashlib.sha256(case.file.read_bytes()).hexdigest()[:12]
    deadline = time.monotonic() + 20
    while True:
        result = CliRunner().invoke(main, ["status", str(case.file), "--format", "json"], catch_exceptions=False)
        [record] = json.loads(result.output)["flows"][0]["daemons"]
        if record["pending"] == {"held": 1} and record["version"] == version or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert (record["version"], record["applier"], record["pending"]) == (version, True, {"held": 1}), record
    assert record["reconciled_age_ms"] is not None and record["reconciled_age_ms"] < 20_000
    text = CliRunner().invoke(main, ["status", str(case.file)], catch_exceptions=False).output
    assert f"running, version {version}, applier, reconciled " in text and "pending: 1 held" in text, text
    code, _ = daemon.stop()
    assert code == 0


def test_one_applier_and_a_takeover_after_sigkill(case):
    case.create("a")
    first = case.run("--reconcile-interval", "2s")
    second = case.run("--reconcile-interval", "2s")
    case.wait_remote("a")

    def appliers() -> list:
        return [d for d in (first, second) if d.proc.poll() is None and metric(d, "mmplan_applier") == 1]

    deadline = time.monotonic() + 20
    while len(appliers()) != 1 or any(metric(d, "mmplan_applier") is None for d in (first, second)):
        assert time.monotonic() < deadline, "no single applier"
        time.sleep(0.5)
    [applier] = appliers()
    other = second if applier is first else first
    assert metric(other, "mmplan_applier") == 0

    applier.proc.send_signal(signal.SIGKILL)
    applier.proc.wait(10)
    case.create("late")
    produce(case, "late", 5)
    case.wait_remote("late", timeout=40)  # the group's session timeout, then the survivor's next reconcile
    wait_count(case, case.remote("late"), 5, timeout=20)
    assert metric(other, "mmplan_applier") == 1
    other.wait_log(lambda d: "now the applier" in d.get("msg", ""))
    code, _ = other.stop()
    assert code == 0
