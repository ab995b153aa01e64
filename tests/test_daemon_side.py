"""The daemon's side work without Kafka: group selection, translation into checkpoints, what is rewritten, the
never-rewind rule of group offset sync, status states, episode logging, and the side work's threads against a
cluster nothing listens on (bounded, never raising)."""

from __future__ import annotations

import logging
import socket
import threading
import time

from builders import compiled
from kafka import TopicPartition

from mmplan.daemon.checkpoints import (
    due_checkpoints,
    may_sync,
    offsets_to_commit,
    select_groups,
    translate_group,
)
from mmplan.daemon.metrics import Metrics
from mmplan.daemon.mm2_format import Checkpoint
from mmplan.daemon.periodic import Episode, describe_error
from mmplan.daemon.reporting import StatusWriter, reported_state, status_interval
from mmplan.daemon.status_record import StatusRecord
from mmplan.daemon.translate import histories
from mmplan.errors import MmplanError

FLOW = "  - {source: us-east, target: us-west}\n"


def test_groups_by_filter_with_mm2_default_excludes_never_the_flows_own():
    [flow] = compiled(FLOW).flows
    groups = ["app", "console-consumer-123", "connect-sink", "__internal", "us-east->us-west", "us-east->other"]
    assert select_groups(groups, flow) == ["app", "us-east->other"]
    [flow] = compiled("  - {source: us-east, target: us-west, groups: {include: ['app.*', 'x'], "
                      "exclude: ['app-test']}}\n").flows
    assert select_groups(["app", "app-test", "apps", "x", "xx", "app"], flow) == ["app", "apps", "x"]
    [flow] = compiled("  - {source: us-east, target: us-west, groups: {include: []}}\n").flows
    assert select_groups(["app"], flow) == []  # an empty include matches nothing, as in MirrorMaker 2


def test_translation_uses_remote_names_and_only_replicated_translatable_partitions():
    [flow] = compiled("  - {source: us-east, target: us-west, topics: {include: ['orders', 'pay']}}\n").flows
    h = histories([("orders", 0, 9, 109), ("orders", 0, 19, 119), ("orders", 1, 4, 4), ("skipped", 0, 9, 9),
                   ("pay", 0, 50, 10)])
    offsets = {TopicPartition("orders", 0): 15,  # between two syncs of equal spans: exact
               TopicPartition("orders", 1): 5,  # right after the newest sync
               TopicPartition("orders", 2): 3,  # no syncs at all
               TopicPartition("skipped", 0): 9,  # not replicated
               TopicPartition("pay", 0): 10}  # below the oldest sync
    assert translate_group("g", offsets, h, flow) == [
        Checkpoint("g", "us-east.orders", 0, 15, 115), Checkpoint("g", "us-east.orders", 1, 5, 5)]


def test_identity_policy_keeps_topic_names():
    [flow] = compiled("  - {source: us-east, target: us-west, replication_policy: identity}\n").flows
    h = histories([("orders", 0, 9, 9)])
    assert translate_group("g", {TopicPartition("orders", 0): 10}, h, flow) == [Checkpoint("g", "orders", 0, 10, 10)]


def test_changed_checkpoints_are_written_and_an_unchanged_group_still_gets_one_in_turn():
    a, b = Checkpoint("g", "t", 0, 10, 20), Checkpoint("g", "t", 1, 5, 6)
    assert due_checkpoints([a, b], {}, 0) == [a, b]  # first time: all
    written = {("t", 0): (10, 20), ("t", 1): (5, 6)}
    assert due_checkpoints([a, b], written, 0) == [a]  # nothing changed: one, in turn
    assert due_checkpoints([a, b], written, 1) == [b]
    moved = Checkpoint("g", "t", 1, 7, 8)
    assert due_checkpoints([a, moved], written, 0) == [moved]  # only the changed one
    back = Checkpoint("g", "t", 0, 3, 4)  # the group rewound: written too
    assert due_checkpoints([back, b], written, 5) == [back]
    assert due_checkpoints([], written, 0) == []


def test_group_sync_never_rewinds_and_only_writes_idle_groups():
    t0, t1, t2 = (TopicPartition("us-east.t", p) for p in range(3))
    translated = {t0: 10, t1: 20, t2: 30}
    assert offsets_to_commit(translated, {}) == translated
    assert offsets_to_commit(translated, {t0: 10, t1: 25, t2: 29}) == {t2: 30}  # equal or ahead: left alone
    assert offsets_to_commit(translated, {t0: 11, t1: 21, t2: 31}) == {}
    assert may_sync("Empty", 0) and may_sync("Dead", 0)
    assert not may_sync("Stable", 1) and not may_sync("PreparingRebalance", 0) and not may_sync("Empty", 1)


def test_status_states_and_interval():
    assert [reported_state(s, False) for s in ("starting", "running", "retrying", "failed", "stopped")] == [
        "started", "running", "retrying", "failed", "failed"]
    assert reported_state("stopped", True) == "stopped"
    [flow] = compiled(FLOW).flows
    assert status_interval(flow) == 5.0
    [slow] = compiled("  - {source: us-east, target: us-west, heartbeats: {interval: 20s}}\n").flows
    assert status_interval(slow) == 20.0


def test_status_records_carry_the_reconcile_report_and_older_records_still_decode():
    [flow] = compiled(FLOW).flows
    log = logging.getLogger("mmplan.flow.test")
    report = {"version": "abc123def456", "applier": True, "reconciled_ms": 1_700_000_000_000,
              "pending": {"held": 2, "deferred": 1}, "other": "ignored"}
    writer = StatusWriter(flow, None, "h:1:x", "old", lambda: ("running", None), None, log,
                          reconcile_report=lambda: report)
    record = writer.record("running")
    assert (record.version, record.applier, record.reconciled_ms, record.pending) == (
        "abc123def456", True, 1_700_000_000_000, {"held": 2, "deferred": 1})
    assert StatusRecord.decode(record.value()) == record
    plain = StatusWriter(flow, None, "h:1:x", "v1", lambda: ("running", None), None, log).record("running")
    assert (plain.version, plain.applier, plain.reconciled_ms, plain.pending) == ("v1", None, None, None)

    def broken():
        raise RuntimeError("bug")

    assert StatusWriter(flow, None, "h:1:x", "v1", lambda: ("running", None), None, log,
                        reconcile_report=broken).record("running").version == "v1"  # the record still goes out
    older = b'{"flow": "a->b", "daemon": "h:1:x", "state": "running", "time_ms": 5, "interval_ms": 5000}'
    old = StatusRecord.decode(older)
    assert old is not None and (old.version, old.applier, old.reconciled_ms, old.pending) == (None,) * 4
    odd = StatusRecord.decode(older[:-1] + b', "pending": 3}')
    assert odd is not None and odd.pending is None


def test_an_episode_is_logged_once_counted_every_time_and_its_end_logged(caplog):
    metrics = Metrics()
    log = logging.getLogger("mmplan.flow.test")
    episode = Episode(log, metrics, "a->b", "checkpoints")
    with caplog.at_level(logging.DEBUG, logger="mmplan.flow.test"):
        episode.failed("b", "writing checkpoints", MmplanError("timed out", where="cluster b"))
        episode.failed("b", "writing checkpoints", TimeoutError("again"))
        episode.ok()
        episode.ok()
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels[0] == ("WARNING", "writing checkpoints: cluster b: timed out (retried every interval; "
                                    "replication goes on)")
    assert levels[1][0] == "DEBUG" and "cluster b: TimeoutError: again" in levels[1][1]
    assert levels[2] == ("INFO", "checkpoints works again") and len(levels) == 3
    assert metrics.registry.get_sample_value("mmplan_errors_total", {"flow": "a->b", "kind": "checkpoints"}) == 2
    assert describe_error("a", "x", "plain") == "x: cluster a: plain"


def test_newest_timestamp_gauges_never_go_back():
    metrics = Metrics()
    metrics.heartbeat("a->b", 2000)
    metrics.heartbeat("a->b", 1000)  # acknowledged out of order
    metrics.checkpointed("a->b", 3, 5000)
    get = metrics.registry.get_sample_value
    assert get("mmplan_heartbeats_total", {"flow": "a->b"}) == 2
    assert get("mmplan_heartbeat_last_timestamp_seconds", {"flow": "a->b"}) == 2.0
    assert get("mmplan_checkpoints_total", {"flow": "a->b"}) == 3
    assert get("mmplan_checkpoint_last_timestamp_seconds", {"flow": "a->b"}) == 5.0
    metrics.group_sync("a->b", "active")
    assert get("mmplan_group_offset_syncs_total", {"flow": "a->b", "result": "active"}) == 1


def test_side_work_against_nothing_listening_never_raises_and_stops_in_bounded_time(caplog):
    from mmplan.daemon.sidework import FlowSideWork
    from mmplan.graph.compile import compile_topology
    from mmplan.topology.loader import parse_topology

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = f"""\
version: 1
defaults: {{replication_factor: 1}}
clusters:
  a: {{bootstrap_servers: "127.0.0.1:{port}"}}
  b: {{bootstrap_servers: "127.0.0.1:{port}"}}
flows:
  - {{source: a, target: b, heartbeats: {{interval: 0.2s}}, checkpoints: {{interval: 0.5s}},
      sync_group_offsets: {{enabled: true, interval: 0.5s}}}}
"""
    topology = parse_topology(text).topology
    [flow] = compile_topology(topology).flows
    metrics = Metrics()
    side = FlowSideWork(flow, topology, runner_state=lambda: ("retrying", "no broker"), daemon="h:1:x",
                        metrics=metrics, logger=logging.getLogger("mmplan.flow.a->b"), timeout=1.0)
    assert [name for name, _ in side.workers] == ["status", "heartbeats", "checkpoints"]
    with caplog.at_level(logging.WARNING, logger="mmplan.flow.a->b"):
        side.start()
        time.sleep(4)
        problems = side.problems()
        side.halt()
        started = time.monotonic()
        side.finish(3.0)
        took = time.monotonic() - started
    assert took < 6
    errors = {k: metrics.registry.get_sample_value("mmplan_errors_total", {"flow": "a->b", "kind": k})
              for k in ("heartbeats", "status", "offset_syncs_read")}
    assert all(errors.values()), errors
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("cluster a" in m and "heartbeats" in m for m in warned), warned
    assert len([m for m in warned if "heartbeats" in m]) == 1  # once per episode
    assert not any(t.is_alive() for t in side.threads if t.name != threading.current_thread().name)
    assert {"heartbeats", "status", "offset_syncs_read"} <= set(problems), problems
    assert "cluster a" in problems["heartbeats"] and "cluster b" in problems["status"]
