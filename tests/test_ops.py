"""The pure parts of the ops commands: translation from checkpoints and syncs, failback's reverse translation,
status verdicts, failover moves and refusals, Connect offset records."""

from __future__ import annotations

from mmplan.daemon.mm2_format import Checkpoint
from mmplan.daemon.status_record import StatusRecord
from mmplan.daemon.translate import Sync, SyncHistory
from mmplan.graph.policy import ReplicationPolicy
from mmplan.ops import failover as fo
from mmplan.ops.offsets import Resume, TimedCheckpoint, back_offset, backwards, freshen, from_checkpoints
from mmplan.ops.read import connect_position
from mmplan.ops.status import FlowFacts, GroupCheckpoints, daemon_state, flow_status, render_text, verdict

POLICY = ReplicationPolicy("default", "us-east")
NOW = 1_700_000_100_000


def history(*pairs: tuple[int, int]) -> SyncHistory:
    h = SyncHistory()
    for u, d in pairs:
        h.add(Sync(u, d))
    return h


def cp(group: str, partition: int, up: int, down: int, ts: int = NOW - 1000, topic: str = "us-east.orders"):
    return TimedCheckpoint(Checkpoint(group, topic, partition, up, down), ts)


# -- translation -------------------------------------------------------------------------------------------------


def test_checkpoints_keep_the_newest_per_partition_of_the_group_only():
    found = from_checkpoints([cp("g", 0, 10, 8), cp("other", 0, 99, 99), cp("g", 1, 5, 5), cp("g", 0, 20, 18)],
                             "g", POLICY)
    assert {k: (r.offset, r.source_topic, r.source_offset) for k, r in found.items()} == {
        ("us-east.orders", 0): (18, "orders", 20), ("us-east.orders", 1): (5, "orders", 5)}
    assert found[("us-east.orders", 0)].origin == "checkpoint"


def test_fresh_uses_newer_source_offsets_and_exact_syncs_only_when_asked():
    resumes = from_checkpoints([cp("g", 0, 10, 10), cp("g", 1, 10, 10)], "g", POLICY)
    syncs = {("orders", 0): history((0, 0), (40, 40), (60, 60)), ("orders", 1): history((0, 0), (40, 50))}
    out = freshen(resumes, {("orders", 0): 50, ("orders", 1): 30, ("orders", 2): 7}, syncs, POLICY)
    assert (out[("us-east.orders", 0)].offset, out[("us-east.orders", 0)].exact) == (50, True)
    # 30 translates only inexactly, to 1: behind the checkpoint, which stays
    assert (out[("us-east.orders", 1)].offset, out[("us-east.orders", 1)].origin) == (10, "checkpoint")
    assert ("us-east.orders", 2) not in out  # no sync for it
    exact = freshen(resumes, {("orders", 1): 30}, syncs, POLICY, exact_only=True)
    assert exact[("us-east.orders", 1)].origin == "checkpoint"  # inexact: the checkpoint stays


def test_fresh_replaces_a_conservative_checkpoint_with_an_exact_answer_never_a_worse_one():
    # MirrorMaker 2 checkpointed 150 -> 1 (it kept only the sync at 0); the syncs translate 150 exactly
    resumes = from_checkpoints([cp("g", 0, 150, 1)], "g", POLICY)
    syncs = {("orders", 0): history((0, 0), (101, 101), (202, 202))}
    out = freshen(resumes, {("orders", 0): 150}, syncs, POLICY, exact_only=True)
    assert (out[("us-east.orders", 0)].offset, out[("us-east.orders", 0)].origin) == (150, "offset-sync")
    # a group rewound on the source since its checkpoint keeps the checkpoint
    assert freshen(resumes, {("orders", 0): 100}, syncs, POLICY)[("us-east.orders", 0)].offset == 1


def test_back_offset_is_exact_between_consistent_syncs_and_never_skips_otherwise():
    h = history((0, 100), (10, 110), (20, 125))
    assert back_offset(h, 105) == (5, True)
    assert back_offset(h, 110) == (10, True)
    assert back_offset(h, 115) == (11, False)  # spans differ: resume after the sync, re-reading
    assert back_offset(h, 126) == (21, True)  # right after the newest sync
    assert back_offset(h, 99) is None


def test_backwards_translates_only_topics_the_flow_replicated():
    syncs = {("orders", 0): history((0, 0), (50, 50))}
    out, missing = backwards({("us-east.orders", 0): 30, ("local", 0): 4, ("us-east.gone", 0): 3}, syncs, POLICY)
    assert {k: r.offset for k, r in out.items()} == {("orders", 0): 30}
    assert out[("orders", 0)].source_topic == "us-east.orders"
    assert missing == [("us-east.gone", 0)]


# -- failover ----------------------------------------------------------------------------------------------------


def resume(partition: int, offset: int, checkpoint_ms: int | None = NOW - 1000, source_offset: int = 0) -> Resume:
    return Resume("us-east.orders", partition, offset, "orders", source_offset, "checkpoint", None, checkpoint_ms)


def test_moves_never_go_backwards_unless_asked():
    resumes = {("us-east.orders", p): resume(p, 10) for p in range(4)}
    current = {("us-east.orders", 1): 5, ("us-east.orders", 2): 10, ("us-east.orders", 3): 15}
    moves = fo.plan_moves(resumes, current)
    assert [(m.commit, m.note.split()[0]) for m in moves] == [(10, "new"), (10, "forward"), (None, "unchanged"),
                                                              (None, "kept:")]
    assert fo.plan_moves(resumes, current, allow_rewind=True)[3].commit == 10


def test_refusals_active_members_nothing_to_translate_and_old_checkpoints():
    resumes = {("us-east.orders", 0): resume(0, 10, checkpoint_ms=NOW - 60_000, source_offset=10)}
    assert "active member" in fo.refusal("g", "us-west", resumes, ("Stable", 1), 0, None, False)
    assert "nothing to translate" in fo.refusal("g", "us-west", {}, ("Dead", 0), 0, None, False)
    old = fo.exposure_ms(resumes, None, NOW)  # source unreadable: the checkpoint's age counts
    assert old == 60_000
    assert "rpo" in fo.refusal("g", "us-west", resumes, ("Empty", 0), old, 30_000, False)
    assert fo.refusal("g", "us-west", resumes, ("Empty", 0), old, 30_000, True) is None
    # the source says the group is still at 10: the old checkpoint is current
    assert fo.exposure_ms(resumes, {("orders", 0): 10}, NOW) == 0
    assert fo.exposure_ms(resumes, {("orders", 0): 11}, NOW) == 60_000


def test_application_changes_name_servers_and_renamed_topics():
    moves = fo.plan_moves({("us-east.orders", 0): resume(0, 1), ("us-east.orders", 1): resume(1, 1)}, {})
    changes = fo.app_changes(["e:9092"], ["w1:9092", "w2:9092"], moves, "g")
    assert changes == [("bootstrap.servers", "e:9092 -> w1:9092,w2:9092"), ("topic", "orders -> us-east.orders"),
                       ("group.id", "g (unchanged)")]
    text = fo.render_text("Failover", moves, changes, [], done=False)
    assert "Would commit 2 of 2 partitions." in text and "orders -> us-east.orders" in text
    refused = fo.render_text("Failover", moves, changes, [], done=False, refused="group g has 1 active member")
    assert "Refused, nothing committed: group g has 1 active member" in refused
    assert "application must change" not in refused


# -- status ------------------------------------------------------------------------------------------------------


def record(state: str, age_ms: int, daemon: str = "h:1:a", interval_ms: int = 1000) -> StatusRecord:
    return StatusRecord("us-east->us-west", daemon, state, NOW - age_ms, interval_ms)


def test_daemon_state_from_status_records():
    assert daemon_state([], NOW)[0] is None
    assert daemon_state([record("running", 500)], NOW)[0] == "running"
    assert daemon_state([record("stopped", 500)], NOW)[0] == "stopped"
    assert daemon_state([record("running", 10_000)], NOW)[0] == "down"  # stale: the daemon died
    assert daemon_state([record("running", 10_000), record("retrying", 100, "h:2:b")], NOW)[0] == "retrying"
    assert daemon_state([record("failed", 100), record("stopped", 100, "h:2:b")], NOW)[0] == "failed"


def test_verdict_thresholds():
    assert verdict(1000, None) == "none"
    assert verdict(1000, 30_000) == "ok"
    assert verdict(20_000, 30_000) == "at risk"
    assert verdict(31_000, 30_000) == "breached"
    assert verdict(None, 30_000) == "breached"


def facts(**kw) -> FlowFacts:
    base = dict(flow="us-east->us-west", now_ms=NOW, engine="mmplan", records=[record("running", 200)],
                heartbeat_interval_ms=1000, newest_heartbeat_ms=NOW - 400, rpo_ms=30_000, lag={"orders": 3})
    return FlowFacts(**{**base, **kw})


def test_status_healthy_stalled_stopped_and_breached():
    ok = flow_status(facts())
    assert (ok.state, ok.verdict, ok.healthy, ok.heartbeat_age_ms) == ("running", "ok", True, 400)
    stalled = flow_status(facts(newest_heartbeat_ms=NOW - 5000))
    assert (stalled.state, stalled.healthy) == ("stalled", False)
    stopped = flow_status(facts(records=[record("stopped", 100)], newest_heartbeat_ms=NOW - 60_000))
    assert (stopped.state, stopped.verdict, stopped.healthy) == ("stopped", "breached", False)
    # MirrorMaker 2: no status records, state from heartbeats
    mm2 = flow_status(facts(records=[], engine="mirrormaker2"))
    assert (mm2.state, mm2.healthy) == ("running", True)
    assert flow_status(facts(records=[], engine="mirrormaker2", newest_heartbeat_ms=None)).state == "down"
    # an old checkpoint counts only when the group has moved on since
    idle = GroupCheckpoints("g", NOW - 120_000, 3, 0)
    assert flow_status(facts(groups=[idle])).verdict == "ok"
    behind = GroupCheckpoints("g", NOW - 20_000, 3, 1)
    s = flow_status(facts(groups=[behind]))
    assert (s.verdict, s.exposure_ms, s.healthy) == ("at risk", 20_000, True)
    late = flow_status(facts(groups=[GroupCheckpoints("g", NOW - 40_000, 3, 1)]))
    assert (late.verdict, late.healthy) == ("breached", False)
    doc = late.doc()
    assert doc["groups"][0] == {"group": "g", "checkpoint_age_ms": 40_000, "partitions": 3, "behind": 1,
                                "current": False}
    assert doc["lag_total"] == 3
    text = render_text([ok, late])
    assert "Flow us-east->us-west: RUNNING" in text and "1 of 2 flows down or over their RPO." in text


def test_each_daemon_shows_its_version_applier_last_reconcile_and_pending_changes():
    applier = StatusRecord("us-east->us-west", "h:1:a", "running", NOW - 200, 5000, version="abc123def456",
                           applier=True, reconciled_ms=NOW - 12_000, pending={"held": 1, "deferred": 0})
    other = StatusRecord("us-east->us-west", "h:2:b", "running", NOW - 300, 5000, version="abc123def456",
                         applier=False, reconciled_ms=None, pending={})
    older = record("running", 100, "h:3:c")  # written before the reconcile report existed
    s = flow_status(facts(records=[applier, other, older]))
    daemons = {d["daemon"]: d for d in s.doc()["daemons"]}
    assert daemons["h:1:a"] == {"daemon": "h:1:a", "state": "running", "stale": False, "age_ms": 200, "error": None,
                                "version": "abc123def456", "applier": True, "reconciled_ms": NOW - 12_000,
                                "reconciled_age_ms": 12_000, "pending": {"held": 1, "deferred": 0}}
    assert (daemons["h:3:c"]["applier"], daemons["h:3:c"]["pending"], daemons["h:3:c"]["reconciled_age_ms"]) == (
        None, None, None)
    text = render_text([s])
    assert ("h:1:a  running, version abc123def456, applier, reconciled 12.0s ago, pending: 1 held"
            in text), text
    assert "h:2:b  running, version abc123def456, not the applier, no successful reconcile yet, pending: none" in text
    assert "h:3:c  running, version unknown\n" in text


def test_connect_offset_records_of_mirrormaker_2():
    key = b'["MirrorSourceConnector",{"cluster":"us-east","partition":2,"topic":"orders"}]'
    assert connect_position(key, b'{"offset":332}', "us-east") == (("orders", 2), 333)
    assert connect_position(key, b'{"offset":332}', "other") is None
    assert connect_position(b'["MirrorCheckpointConnector",{"partition":1,"topic":"x","group":"g"}]',
                            b'{"offset":0}', "us-east") is None
    assert connect_position(key, None, "us-east") is None
    assert connect_position(b"junk", b"{}", "us-east") is None


# -- drill -------------------------------------------------------------------------------------------------------


def test_drill_counts_and_verdict():
    from mmplan.ops.drill import DrillResult, count_after_failover, render_text, verdict_failures

    assert count_after_failover([9, 10, 11, 12], consumed=10, records=14) == (1, 1)
    assert count_after_failover(list(range(10, 20)), consumed=10, records=20) == (0, 0)
    r = DrillResult("a->b", "mmplan-drill", "mmplan-drill-x", 20, 10, latency_ms=500, checkpoint_lag_ms=40_000,
                    reread=0, missed=0, rpo_ms=30_000)
    assert verdict_failures(r) == ["checkpoint lag 40.0s is over the rpo of 30s"]
    assert not r.passed and "Drill FAILED" in render_text(r)
    ok = DrillResult("a->b", "t", "g", 20, 10, latency_ms=500, checkpoint_lag_ms=900, reread=0, missed=0)
    assert ok.passed and ok.doc()["failures"] == []
    assert not DrillResult("a->b", "t", "g", 20, 10, failure="flow a->b is stopped").passed


def test_an_unreachable_target_is_a_status_of_its_own():
    s = flow_status(FlowFacts(flow="a->b", now_ms=NOW, engine="unknown", heartbeats_enabled=False, rpo_ms=30_000,
                              errors=["cannot read the target b: timed out"]), unreachable=True)
    assert (s.state, s.verdict, s.healthy) == ("unreachable", "breached", False)
    assert "timed out" in s.reason


def test_drill_refuses_a_topic_or_probe_group_the_flow_does_not_select(tmp_path):
    from click.testing import CliRunner

    from mmplan.cli.drill import drill
    from mmplan.errors import MmplanError

    file = tmp_path / "t.yaml"
    file.write_text("version: 1\nclusters:\n  a: {bootstrap_servers: 'a:1'}\n  b: {bootstrap_servers: 'b:1'}\n"
                    "flows:\n  - {source: a, target: b, topics: {include: ['orders']}, groups: {include: ['app']}}\n")
    result = CliRunner().invoke(drill, [str(file), "--flow", "a->b"], standalone_mode=False)
    assert isinstance(result.exception, MmplanError)
    assert "does not replicate the drill topic mmplan-drill" in result.exception.message
    assert "--topic" in result.exception.hint
    result = CliRunner().invoke(drill, [str(file), "--flow", "a->b", "--topic", "orders"], standalone_mode=False)
    assert isinstance(result.exception, MmplanError) and "probe group" in result.exception.message
