"""The daemon's shell without Kafka: which topics runners get, what a reconcile applies, reloads, logs, progress.

Plans and snapshots are built by hand (tests/builders.py); the flow runners are stand-ins that record
what they were told. The real FlowRunner and real clusters are in tests/kafka/test_run.py.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time

import pytest
from builders import PAIR, cluster, compiled, in_sync, snapshot, topic
from click.testing import CliRunner

from mmplan.apply.execute import Outcome
from mmplan.apply.workflow import LivePlan
from mmplan.cli import _Group
from mmplan.cli.run import run as run_command
from mmplan.daemon.logs import REDACTED, Redactor, setup_logging, topology_secrets
from mmplan.daemon.metrics import Metrics
from mmplan.daemon.progress import ProgressView, flow_totals, render_lines
from mmplan.daemon.runner import (
    Daemon,
    SyncClock,
    advance_clock,
    created_topics,
    flow_logger,
    reconcile_interval,
    replicated_topics,
    running_flows,
    safe_changes,
)
from mmplan.plan.diff import compute_plan
from mmplan.plan.model import Action, Change, ChangeKind, Plan, PlanProblem
from mmplan.topology.loader import parse_topology


@pytest.fixture(autouse=True)
def _restore_logging():
    """setup_logging changes process-wide levels; put them back for the tests that follow."""
    root, kafka = logging.getLogger(), logging.getLogger("kafka")
    levels = root.level, kafka.level
    yield
    root.setLevel(levels[0])
    kafka.setLevel(levels[1])


TWO_FLOWS = ("  - {source: us-east, target: us-west, refresh_topics: {interval: 30s}}\n"
             "  - {source: us-west, target: us-east, refresh_topics: {interval: 2m}}\n")


# --- interval ------------------------------------------------------------------------------------------------

def test_interval_is_the_shortest_refresh_of_the_running_flows():
    c = compiled(TWO_FLOWS)
    assert reconcile_interval(c.flows) == 30.0
    assert reconcile_interval(c.flows[1:]) == 120.0
    assert reconcile_interval(c.flows, override=2.0) == 2.0
    assert reconcile_interval(compiled().flows) == 60.0  # the built-in default


def test_disabled_flows_are_not_run():
    c = compiled("  - {source: us-east, target: us-west}\n  - {source: us-west, target: us-east, enabled: false}\n")
    assert [f.name for f in running_flows(c.flows)] == ["us-east->us-west"]


def test_connect_engine_flows_are_not_run():
    c = compiled("  - {source: us-east, target: us-west}\n"
                 "  - {source: us-west, target: us-east, engine: connect, "
                 "connect: {urls: ['http://connect:8083']}}\n")
    assert [f.name for f in running_flows(c.flows)] == ["us-east->us-west"]


# --- topics handed to runners -------------------------------------------------------------------------------

EAST = cluster("us-east", topic("orders", 3), topic("payments"), topic("heartbeats", cleanup_policy="compact"),
               topic("mm2-offset-syncs.us-west.internal", cleanup_policy="compact"), topic("__consumer_offsets", 50),
               topic("us-west.orders"))


def test_only_topics_whose_remote_exists_are_replicated():
    [flow] = compiled().flows
    west = cluster("us-west", topic("us-east.orders", 3), topic("us-east.heartbeats"))
    assert replicated_topics([flow], snapshot(EAST, west)) == {"us-east->us-west": ["heartbeats", "orders"]}


def test_topics_created_by_this_reconcile_count():
    [flow] = compiled().flows
    west = cluster("us-west", topic("us-east.orders", 3))
    created = {("us-west", "us-east.payments"), ("us-east", "us-east.heartbeats")}  # wrong cluster: not counted
    assert replicated_topics([flow], snapshot(EAST, west), created) == {"us-east->us-west": ["orders", "payments"]}


def test_a_source_topic_created_by_this_reconcile_counts_too():
    [flow] = compiled().flows
    east = cluster("us-east", topic("orders"))
    created = {("us-east", "heartbeats"), ("us-west", "us-east.heartbeats"), ("us-west", "us-east.orders")}
    assert replicated_topics([flow], snapshot(east, cluster("us-west")), created) == {
        "us-east->us-west": ["heartbeats", "orders"]}


def test_filters_internal_topics_and_cycles_are_never_handed_out():
    [flow] = compiled("  - {source: us-east, target: us-west, topics: {include: ['pay.*', 'us-west\\..*']}}\n").flows
    west = in_sync(EAST, (topic("us-east.us-west.orders"), topic("us-east.mm2-offset-syncs.us-west.internal")))
    # orders is filtered out; us-west.orders came from the target (a cycle); internal topics never go
    assert replicated_topics([flow], snapshot(EAST, west)) == {"us-east->us-west": ["heartbeats", "payments"]}


def test_a_flow_with_an_unread_cluster_keeps_its_topics():
    c = compiled(TWO_FLOWS)
    snap = snapshot(EAST, unreachable={"us-west": "timed out"})
    assert replicated_topics(c.flows, snap) == {}


def test_both_directions_get_their_own_topics():
    c = compiled(TWO_FLOWS)
    west = cluster("us-west", topic("us-east.orders", 3), topic("clicks"))
    east = cluster("us-east", topic("orders", 3), topic("us-west.clicks"))
    assert replicated_topics(c.flows, snapshot(east, west)) == {"us-east->us-west": ["orders"],
                                                                "us-west->us-east": ["clicks"]}


def test_created_topics_are_the_successful_creations():
    ok = Change(kind=ChangeKind.create_topic, cluster="w", topic="a", after={})
    bad = Change(kind=ChangeKind.create_topic, cluster="w", topic="b", after={})
    conf = Change(kind=ChangeKind.set_config, cluster="w", topic="c", config="x", after="1")
    assert created_topics([Outcome(ok), Outcome(bad, error="denied"), Outcome(conf)]) == {("w", "a")}


# --- what a reconcile applies -------------------------------------------------------------------------------

def _changes() -> list[Change]:
    f = "us-east->us-west"
    return [
        Change(kind=ChangeKind.create_topic, cluster="us-west", topic="us-east.a", after={}, flow=f),
        Change(kind=ChangeKind.add_partitions, cluster="us-west", topic="us-east.b", before=1, after=3, flow=f),
        Change(kind=ChangeKind.set_config, cluster="us-west", topic="us-east.b", config="retention.ms", after="1",
               flow=f),
        Change(kind=ChangeKind.unset_config, cluster="us-west", topic="us-east.b", config="x", before="1", flow=f),
        Change(kind=ChangeKind.create_acl, cluster="us-west", topic="us-east.b", flow=f),
        Change(kind=ChangeKind.delete_topic, cluster="us-west", topic="us-east.gone", before={"partitions": 1},
               flow=f, held=True),
        Change(kind=ChangeKind.delete_acl, cluster="us-west", topic="us-east.b", flow=f, held=False),
    ]


def test_deletes_are_never_applied_even_when_not_held():
    sel = safe_changes(Plan(changes=_changes()), SyncClock(), now=100.0)
    assert [c.kind for c in sel.apply] == [ChangeKind.create_topic, ChangeKind.add_partitions, ChangeKind.set_config,
                                           ChangeKind.unset_config, ChangeKind.create_acl]
    assert {c.kind for c in sel.held_deletes} == {ChangeKind.delete_topic, ChangeKind.delete_acl}
    assert not sel.deferred
    plan = sel.plan(Plan(changes=_changes(), flows=["us-east->us-west"]))
    assert all(c.action is not Action.delete for c in plan.pending) and plan.flows == ["us-east->us-west"]


def test_a_flow_that_allows_deletes_gets_them_applied():
    sel = safe_changes(Plan(changes=_changes()), SyncClock(), now=100.0, allow_delete={"us-east->us-west"})
    deletes = [c for c in sel.apply if c.action is Action.delete]
    assert {c.kind for c in deletes} == {ChangeKind.delete_topic, ChangeKind.delete_acl}
    assert not sel.held_deletes and all(not c.held for c in deletes)
    other = safe_changes(Plan(changes=_changes()), SyncClock(), now=100.0, allow_delete={"us-west->us-east"})
    assert len(other.held_deletes) == 2


def test_config_and_acl_sync_keep_their_flow_interval():
    [flow] = compiled("  - {source: us-east, target: us-west, sync_topic_configs: {interval: 10m},"
                      " sync_topic_acls: {interval: 20m}}\n").flows
    clock = SyncClock()
    first = safe_changes(Plan(changes=_changes()), clock, now=100.0)
    advance_clock(clock, [flow], first, [Outcome(c) for c in first.apply], now=100.0)
    assert clock.configs[flow.name] == 700.0 and clock.acls[flow.name] == 1300.0

    soon = safe_changes(Plan(changes=_changes()), clock, now=160.0)
    assert [c.kind for c in soon.apply] == [ChangeKind.create_topic, ChangeKind.add_partitions]
    assert [c.kind for c in soon.deferred] == [ChangeKind.set_config, ChangeKind.unset_config, ChangeKind.create_acl]
    later = safe_changes(Plan(changes=_changes()), clock, now=701.0)
    assert [c.kind for c in later.deferred] == [ChangeKind.create_acl]


def test_a_failed_config_change_is_retried_at_the_next_reconcile():
    [flow] = compiled().flows
    clock = SyncClock()
    sel = safe_changes(Plan(changes=_changes()), clock, now=0.0)
    outcomes = [Outcome(c, error="denied" if c.kind is ChangeKind.set_config else None) for c in sel.apply]
    advance_clock(clock, [flow], sel, outcomes, now=0.0)
    assert clock.configs_due(flow.name, 1.0)
    assert not clock.acls_due(flow.name, 1.0)


# --- the daemon with stand-in runners -----------------------------------------------------------------------

class StandIn:
    """Records what the daemon tells it; `run` waits for stop like FlowRunner does."""

    made: list[StandIn] = []

    def __init__(self, flow, topology, metrics=None, logger=None):
        self.name = flow.name
        self.flow = flow
        self.state = "starting"
        self.error = None
        self.topics: list[list[str]] = []
        self.stopped = False
        StandIn.made.append(self)

    def set_topics(self, source_topics):
        self.topics.append(list(source_topics))

    def run(self, stop):
        self.state = "running"
        stop.wait()
        self.state = "stopped"
        self.stopped = True


class Fake:
    """plan_topology and apply_plan stand-ins over a snapshot the test changes."""

    def __init__(self, snap):
        self.snap = snap
        self.applied: list[Plan] = []
        self.fail_apply: set[str] = set()
        self.problems: list[PlanProblem] = []

    def plan(self, loaded, flow_names, allow_delete=False, timeout=10.0):
        assert allow_delete is False
        c = compiled_of(loaded)
        flows = c.select(flow_names)
        plan = compute_plan(c, flows, self.snap, allow_delete=False)
        if self.problems:
            plan = plan.model_copy(update={"problems": self.problems})
        return LivePlan(plan, self.snap, c)

    def apply(self, plan, topology, timeout=10.0, report=lambda o: None):
        self.applied.append(plan)
        outcomes = [Outcome(c, error="boom" if c.topic in self.fail_apply else None) for c in plan.pending]
        for o in outcomes:
            report(o)
        return outcomes


def compiled_of(loaded):
    from mmplan.graph.compile import compile_topology

    return compile_topology(loaded.topology)


def write_topology(path, flows="  - {source: us-east, target: us-west}\n", defaults=""):
    path.write_text(PAIR.format(flows=flows, defaults=defaults))
    return str(path)


def make_daemon(tmp_path, snap, flows="  - {source: us-east, target: us-west}\n", **kwargs):
    file = write_topology(tmp_path / "topology.yaml", flows)
    loaded = parse_topology(open(file).read(), file)
    chosen = running_flows(compiled_of(loaded).flows)
    fake = Fake(snap)
    StandIn.made = []
    kwargs.setdefault("side_factory", None)  # no heartbeats/checkpoints/status: there are no clusters here
    daemon = Daemon(file, loaded, chosen, runner_factory=StandIn, plan_fn=fake.plan, apply_fn=fake.apply,
                    stop_timeout=5.0, **kwargs)
    return daemon, fake


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_first_reconcile_creates_then_hands_out_topics_then_starts(tmp_path):
    east = cluster("us-east", topic("orders", 3), topic("payments"), topic("heartbeats"))
    west = cluster("us-west", topic("us-east.payments"))
    daemon, fake = make_daemon(tmp_path, snapshot(east, west))
    result = daemon.reconcile()
    assert result.ok, result.summary
    [applied] = fake.applied
    assert ("us-west", "us-east.orders") in {(c.cluster, c.topic) for c in applied.pending}
    [runner] = StandIn.made
    assert runner.topics == [["heartbeats", "orders", "payments"]]  # set before the thread started
    wait_for(lambda: runner.state == "running")
    ok, detail = daemon.health()
    assert ok and detail["flows"]["us-east->us-west"] == {"state": "running", "error": None}
    assert detail["reconcile"]["ok"] and detail["topology"]["stale"] is None
    assert daemon.shutdown() == 0 and runner.stopped


def test_failed_creation_is_not_handed_out_and_nothing_is_reread(tmp_path):
    east = cluster("us-east", topic("orders"), topic("payments"))
    daemon, fake = make_daemon(tmp_path, snapshot(east, cluster("us-west")))
    fake.fail_apply = {"us-east.orders"}
    result = daemon.reconcile()
    assert not result.ok and "1 failed" in result.summary
    assert StandIn.made[0].topics == [["heartbeats", "payments"]]  # heartbeats: created on both sides
    daemon.shutdown()


def test_held_deletes_and_warnings_are_logged_once(tmp_path, caplog):
    east = cluster("us-east", topic("orders"))
    west = cluster("us-west", topic("us-east.orders", 5), topic("us-east.gone"))
    daemon, fake = make_daemon(tmp_path, snapshot(east, west))
    with caplog.at_level(logging.INFO, logger="mmplan"):
        daemon.reconcile()
        daemon.reconcile()
    held = [r for r in caplog.records if r.getMessage().startswith("held:")]
    assert len(held) == 1 and "us-east.gone" in held[0].getMessage()
    [mismatch] = [r for r in caplog.records if getattr(r, "code", None) == "partition-mismatch"]
    assert mismatch.levelname == "WARNING" and mismatch.flow == "us-east->us-west"
    assert all(c.kind is not ChangeKind.delete_topic for p in fake.applied for c in p.changes)
    # the status records' reconcile report: the held delete is pending
    report = daemon.reconcile_report()
    assert report["pending"] == {"held": 1} and report["applier"] is True
    assert report["version"] == daemon.current.version[:12] and report["reconciled_ms"] is not None
    daemon.shutdown()


def test_unreachable_cluster_fails_the_reconcile_and_keeps_the_topics(tmp_path):
    east = cluster("us-east", topic("orders"))
    west = cluster("us-west", topic("us-east.orders"))
    daemon, fake = make_daemon(tmp_path, snapshot(east, west))
    assert daemon.reconcile_report() == {"version": daemon.current.version[:12], "applier": None,
                                         "reconciled_ms": None, "pending": None}  # no reconcile yet
    first = daemon.reconcile()
    assert first.ok
    runner = StandIn.made[0]
    fake.snap = snapshot(east, unreachable={"us-west": "timed out"})
    result = daemon.reconcile()
    assert not result.ok and "timed out" in result.summary
    assert daemon.reconcile_report()["reconciled_ms"] == int(first.at.timestamp() * 1000)  # the last good one
    assert daemon.metrics.registry.get_sample_value(
        "mmplan_errors_total", {"flow": "us-east->us-west", "kind": "reconcile"}) == 1
    assert runner.topics == [["heartbeats", "orders"]]  # not emptied
    assert len(fake.applied) == 1  # nothing applied on a plan with errors
    assert StandIn.made == [runner]  # still the same runner
    daemon.shutdown()


def test_new_topic_is_picked_up_at_the_next_reconcile(tmp_path):
    east = cluster("us-east", topic("orders"))
    daemon, fake = make_daemon(tmp_path, snapshot(east, cluster("us-west", topic("us-east.orders"))))
    daemon.reconcile()
    fake.snap = snapshot(cluster("us-east", topic("orders"), topic("fresh")),
                         cluster("us-west", topic("us-east.orders")))
    daemon.reconcile()
    assert StandIn.made[0].topics == [["heartbeats", "orders"], ["fresh", "heartbeats", "orders"]]
    daemon.reconcile()  # unchanged: not told again
    assert len(StandIn.made[0].topics) == 2
    daemon.shutdown()


def test_invalid_reload_keeps_the_last_good_topology(tmp_path):
    east = cluster("us-east", topic("orders"))
    daemon, fake = make_daemon(tmp_path, snapshot(east, cluster("us-west", topic("us-east.orders"))))
    daemon.reconcile()
    (tmp_path / "topology.yaml").write_text("version: 1\nclusters: {}\nflows: [\n")
    result = daemon.reconcile()
    assert "topology file not used" in result.summary and "YAML" in daemon.stale
    ok, detail = daemon.health()
    assert "YAML" in detail["topology"]["stale"]
    assert StandIn.made[0].topics == [["heartbeats", "orders"]] and len(StandIn.made) == 1
    # a check error (a flow to an undeclared cluster) is refused the same way
    write_topology(tmp_path / "topology.yaml", "  - {source: us-east, target: nowhere}\n")
    daemon.reconcile()
    assert "unknown" in daemon.stale or "nowhere" in daemon.stale
    # fixed: used again, and the stale note is gone
    write_topology(tmp_path / "topology.yaml")
    assert daemon.reconcile().ok and daemon.stale is None
    daemon.shutdown()


def test_reload_starts_added_flows_restarts_changed_ones_and_stops_removed_ones(tmp_path):
    east = cluster("us-east", topic("orders"), topic("us-west.clicks"))
    west = cluster("us-west", topic("us-east.orders"), topic("clicks"))
    daemon, fake = make_daemon(tmp_path, snapshot(east, west))
    daemon.reconcile()
    [first] = StandIn.made
    write_topology(tmp_path / "topology.yaml", TWO_FLOWS)
    daemon.reconcile()
    names = sorted(r.name for r in StandIn.made)
    assert names == ["us-east->us-west", "us-east->us-west", "us-west->us-east"]  # restarted: settings changed
    assert first.stopped
    assert daemon.interval == 30.0
    for name in ("us-east->us-west", "us-west->us-east"):  # what a real FlowRunner reports
        daemon.metrics.set_state(name, "running")
    write_topology(tmp_path / "topology.yaml", "  - {source: us-east, target: us-west, refresh_topics: "
                                               "{interval: 30s}}\n")
    daemon.reconcile()
    back = next(r for r in StandIn.made if r.name == "us-west->us-east")
    wait_for(lambda: back.stopped)
    assert set(daemon.slots) == {"us-east->us-west"}
    # the removed flow's gauges are gone (no alert for a flow removed on purpose); the other's stay
    flows = {s.labels["flow"] for m in daemon.metrics.registry.collect() if m.name == "mmplan_flow_state"
             for s in m.samples}
    assert flows == {"us-east->us-west"}
    daemon.shutdown()


def test_health_is_bad_until_every_flow_runs(tmp_path):
    daemon, fake = make_daemon(tmp_path, snapshot(cluster("us-east"), cluster("us-west")))
    ok, detail = daemon.health()
    assert not ok and detail["flows"]["us-east->us-west"]["state"] == "starting" and detail["reconcile"] is None
    daemon.reconcile()
    wait_for(lambda: daemon.health()[0])
    StandIn.made[0].state, StandIn.made[0].error = "failed", "TOPIC_AUTHORIZATION_FAILED"
    ok, detail = daemon.health()
    assert not ok and detail["flows"]["us-east->us-west"]["error"] == "TOPIC_AUTHORIZATION_FAILED"
    daemon.shutdown()


def test_run_reconciles_on_wake_and_stops_cleanly(tmp_path):
    daemon, fake = make_daemon(tmp_path, snapshot(cluster("us-east"), cluster("us-west")), interval=3600.0)
    stop = threading.Event()
    codes = []
    t = threading.Thread(target=lambda: codes.append(daemon.run(stop, poll=0.05)))
    t.start()
    wait_for(lambda: len(fake.applied) == 1)
    daemon.request_reconcile()  # what SIGHUP does: the same snapshot, so the same changes again
    wait_for(lambda: len(fake.applied) == 2)
    stop.set()
    t.join(5)
    assert codes == [0] and StandIn.made[0].stopped


class FailsAtOnce(StandIn):
    def run(self, stop):
        if self.name == "us-west->us-east":
            self.state, self.error = "failed", "TOPIC_AUTHORIZATION_FAILED"
            return
        super().run(stop)


def test_a_failed_flow_does_not_stop_the_others_and_the_stop_is_still_clean(tmp_path, caplog):
    daemon, fake = make_daemon(tmp_path, snapshot(cluster("us-east"), cluster("us-west")), flows=TWO_FLOWS)
    daemon.runner_factory = FailsAtOnce
    with caplog.at_level(logging.ERROR, logger="mmplan"):
        daemon.reconcile()
        failed = next(r for r in StandIn.made if r.name == "us-west->us-east")
        wait_for(lambda: not daemon.slots[failed.name].thread.is_alive())
    assert any("flow stopped on its own: TOPIC_AUTHORIZATION_FAILED" in r.getMessage() for r in caplog.records)
    ok, detail = daemon.health()
    assert not ok and detail["flows"]["us-east->us-west"]["state"] == "running"
    assert detail["flows"]["us-west->us-east"] == {"state": "failed", "error": "TOPIC_AUTHORIZATION_FAILED"}
    daemon.reconcile()  # not restarted behind the operator's back: same settings, same (failed) runner
    assert len(StandIn.made) == 2
    assert daemon.shutdown() == 0


def test_a_runner_that_does_not_stop_makes_the_exit_code_1(tmp_path):
    daemon, fake = make_daemon(tmp_path, snapshot(cluster("us-east"), cluster("us-west")))
    daemon.stop_timeout = 0.2
    daemon.reconcile()
    runner = StandIn.made[0]
    wait_for(lambda: runner.state == "running")
    slot = daemon.slots[runner.name]
    its_stop, slot.stop = slot.stop, threading.Event()  # shutdown sets an event the runner does not wait on
    try:
        assert daemon.shutdown() == 1
    finally:
        its_stop.set()


class SideStandIn:
    """Records what the daemon does with a flow's side work."""

    made: list[SideStandIn] = []

    def __init__(self, flow, topology, *, runner_state, daemon, version, metrics, logger, timeout, reconcile_report):
        self.name, self.runner_state, self.daemon, self.version = flow.name, runner_state, daemon, version
        self.reconcile_report = reconcile_report
        self.events: list[str] = []
        SideStandIn.made.append(self)

    def start(self):
        self.events.append("start")

    def halt(self):
        self.events.append("halt")

    def finish(self, timeout, error=None):
        self.events.append(f"finish:{self.runner_state()[0]}:{error}")
        return True

    def problems(self):
        return {"checkpoints": "writing checkpoints: cluster us-west: timed out"} if self.name == "us-west->us-east" \
            else {}


def test_side_work_starts_with_its_flow_and_finishes_after_it_stopped(tmp_path):
    SideStandIn.made = []
    east = cluster("us-east", topic("orders"), topic("us-west.clicks"))
    west = cluster("us-west", topic("us-east.orders"), topic("clicks"))
    daemon, fake = make_daemon(tmp_path, snapshot(east, west), side_factory=SideStandIn)
    daemon.reconcile()
    [side] = SideStandIn.made
    assert side.events == ["start"] and side.daemon == daemon.daemon_id and len(side.version) == 12
    assert side.reconcile_report()["applier"] is True and side.reconcile_report()["version"] == side.version
    wait_for(lambda: side.runner_state() == ("running", None))
    write_topology(tmp_path / "topology.yaml", TWO_FLOWS)  # settings changed: stopped (finished), then a new one
    daemon.reconcile()
    assert side.events == ["start", "halt", "finish:stopped:None"]
    assert sorted(s.name for s in SideStandIn.made) == ["us-east->us-west", "us-east->us-west", "us-west->us-east"]
    wait_for(lambda: daemon.health()[0])
    ok, detail = daemon.health()  # failing side work is shown, and does not make the daemon unhealthy
    assert ok and detail["side_work"] == {"us-west->us-east": {"checkpoints": "writing checkpoints: cluster us-west: "
                                                                              "timed out"}}
    assert daemon.shutdown() == 0
    assert all(s.events == ["start", "halt", "finish:stopped:None"] for s in SideStandIn.made)


# --- logs -----------------------------------------------------------------------------------------------------

SECURE = """\
version: 1
defaults: {replication_factor: 1}
clusters:
  us-east:
    bootstrap_servers: e:9092
    security: {protocol: SASL_PLAINTEXT, sasl_mechanism: SCRAM-SHA-512, sasl_username: app,
               sasl_password: "${EAST_PASSWORD}"}
  us-west: {bootstrap_servers: w:9092}
flows:
  - {source: us-east, target: us-west}
"""


def test_json_lines_parse_and_carry_extra_fields_and_no_secret():
    topology = parse_topology(SECURE).topology
    secret = "s3cr\"et-v@lue"
    redact = Redactor(topology_secrets(topology, env={"EAST_PASSWORD": secret}))
    out = io.StringIO()
    handler = setup_logging("json", stream=out, redact=redact)
    try:
        log = logging.getLogger("mmplan.run")
        log.info("applied %s", "a change", extra={"flow": "us-east->us-west", "cluster": "us-west"})
        log.error("cannot connect with password %s", secret, extra={"detail": {"password": secret}})
        try:
            raise RuntimeError(f"auth failed for {secret}")
        except RuntimeError:
            log.exception("boom")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = out.getvalue().splitlines()
    docs = [json.loads(line) for line in lines]
    assert len(docs) == 3
    assert docs[0]["msg"] == "applied a change" and docs[0]["flow"] == "us-east->us-west"
    assert set(docs[0]) >= {"ts", "level", "logger", "msg"} and docs[0]["level"] == "info"
    assert docs[0]["logger"] == "mmplan.run" and docs[0]["ts"].endswith("Z")
    assert docs[1]["msg"] == f"cannot connect with password {REDACTED}" and docs[1]["detail"]["password"] == REDACTED
    assert "RuntimeError" in docs[2]["exc"]
    assert secret not in out.getvalue() and json.dumps(secret)[1:-1] not in out.getvalue()


def test_a_flows_log_lines_carry_its_name():
    out = io.StringIO()
    handler = setup_logging("json", stream=out)
    try:
        flow_logger("a->b").warning("retrying")
        flow_logger("a->b").info("x", extra={"flow": "explicit"})
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["logger"], first["flow"], first["level"]) == ("mmplan.flow.a->b", "a->b", "warning")
    assert second["flow"] == "explicit"
    assert len(logging.getLogger("mmplan.flow.a->b").filters) == 1


def test_text_lines_show_extra_fields_and_no_secret():
    redact = Redactor(["hunter2"])
    out = io.StringIO()
    handler = setup_logging("text", stream=out, redact=redact)
    try:
        logging.getLogger("mmplan.run").warning("password hunter2", extra={"flow": "a->b"})
    finally:
        logging.getLogger().removeHandler(handler)
    line = out.getvalue()
    assert "WARNING" in line and "[flow=a->b]" in line and "password ***" in line and "hunter2" not in line


def test_kafka_pythons_own_lines_only_at_debug():
    for level, kafka_level in ((logging.INFO, logging.CRITICAL), (logging.DEBUG, logging.WARNING)):
        handler = setup_logging("text", level=level, stream=io.StringIO())
        logging.getLogger().removeHandler(handler)
        assert logging.getLogger("kafka").level == kafka_level


def test_unset_secret_is_not_a_secret():
    topology = parse_topology(SECURE).topology
    assert topology_secrets(topology, env={}) == set()


def test_connect_passwords_are_secrets_too():
    text = SECURE.replace("  - {source: us-east, target: us-west}\n", "  - {source: us-east, target: us-west, "
                          "engine: connect, connect: {urls: [\"http://c:8083\"], username: u, password: \"${CP}\"}}\n")
    topology = parse_topology(text).topology
    assert topology_secrets(topology, env={"EAST_PASSWORD": "a", "CP": "connect-secret"}) == {"a", "connect-secret"}


def test_health_detail_is_redacted(tmp_path, monkeypatch):
    daemon, fake = make_daemon(tmp_path, snapshot(cluster("us-east"), cluster("us-west")))
    daemon.redact.update(["topsecret"])
    daemon.stale = "bad password topsecret"
    assert "topsecret" not in json.dumps(daemon.health()[1])


# --- progress -------------------------------------------------------------------------------------------------

def test_progress_lines_from_metrics():
    m = Metrics()
    m.replicated("a->b", "orders", 1000, 10_000, 0.1)
    m.replicated("a->b", "payments", 500, 5_000, None)
    m.set_lag("a->b", "orders", 0, 7)
    m.set_lag("a->b", "orders", 1, 3)
    records, lag = flow_totals(m)
    assert records == {"a->b": 1500.0} and lag == {"a->b": 10.0}
    lines = render_lines({"a->b": ("running", None), "b->a": ("failed", "TOPIC_DELETED")}, records, lag,
                         {"a->b": 250.0})
    assert lines[0].split() == ["a->b", "running", "250", "rec/s", "1,500", "records", "lag", "10"]
    assert lines[1].split()[:2] == ["b->a", "failed"] and "TOPIC_DELETED" in lines[1] and "lag -" in lines[1]


def test_progress_view_keeps_its_lines_below_the_log():
    m = Metrics()
    out = io.StringIO()
    view = ProgressView(m, lambda: {"a->b": ("running", None)}, out, period=60)
    view.refresh()
    m.replicated("a->b", "t", 10, 100, None)
    view.stream.write("a log line\n")
    view.refresh()
    text = out.getvalue()
    assert text.count("a->b") == 3  # drawn, put back under the log line, redrawn
    assert "\x1b[1F\x1b[J" in text and text.index("a log line") < text.rindex("a->b")
    view.stop()


# --- the command, offline -------------------------------------------------------------------------------------

def invoke(*args):
    cli = _Group(name="mmplan", commands={"run": run_command})
    result = CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def test_invalid_topology_exits_1_with_the_findings(tmp_path):
    file = write_topology(tmp_path / "t.yaml", "  - {source: us-east, target: nowhere}\n")
    result = invoke(file)
    assert result.exit_code == 1 and "nowhere" in result.output and "error[" in result.output


def test_schema_error_exits_1(tmp_path):
    (tmp_path / "t.yaml").write_text("version: 1\nclusters: {a: {bootstrap_servers: x:1}}\nflows: [{source: a}]\n")
    result = invoke(str(tmp_path / "t.yaml"))
    assert result.exit_code == 1 and "missing key 'target'" in result.output


def test_unknown_flow_and_bad_interval_exit_1(tmp_path):
    file = write_topology(tmp_path / "t.yaml")
    result = invoke(file, "--flow", "us-west->us-east")
    assert result.exit_code == 1 and "no flow named" in result.output
    result = invoke(file, "--reconcile-interval", "soon")
    assert result.exit_code == 1 and "not a duration" in result.output


def test_unset_secret_exits_1_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("EAST_PASSWORD", raising=False)
    (tmp_path / "t.yaml").write_text(SECURE)
    result = invoke(str(tmp_path / "t.yaml"))
    assert result.exit_code == 1 and "EAST_PASSWORD is not set" in result.output


@pytest.mark.parametrize("flows", ["  - {source: us-east, target: us-west, enabled: false}\n"])
def test_no_enabled_flow_exits_1(tmp_path, flows):
    result = invoke(write_topology(tmp_path / "t.yaml", flows))
    assert result.exit_code == 1 and "no enabled flow" in result.output
