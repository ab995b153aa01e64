"""`mmplan doctor` on real sandbox clusters: all green for the sandbox super user, named failures otherwise."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from mmplan.kafka.admin import Admin
from mmplan.kafka.doctor import CHECKS, PROBE_TOPIC, run_doctor
from mmplan.sandbox import PASSWORD_VAR
from mmplan.topology.loader import load_topology

pytestmark = pytest.mark.kafka


def _doctor(*args: str) -> tuple[int, str]:
    """Run `mmplan doctor` as the CLI does: (exit code, output)."""
    from mmplan.cli import main

    if "doctor" in main.commands:
        result = CliRunner().invoke(main, ["doctor", *args])
        return result.exit_code, result.output
    from mmplan.cli.doctor import doctor

    result = CliRunner().invoke(doctor, list(args), standalone_mode=False)
    return result.return_value, result.output


def test_every_check_passes_on_the_sandbox_pair(kafka_pair):
    topology = load_topology(kafka_pair.dir / "topology.yaml").topology
    checks = run_doctor(topology)
    assert [(c.cluster, c.name) for c in checks] == [(a, n) for a in ("us-east", "us-west") for n in CHECKS]
    assert [c for c in checks if not c.ok] == []
    detail = {(c.cluster, c.name): c.detail for c in checks}
    assert detail[("us-east", "kafka version")].startswith(kafka_pair.kafka_version.rsplit(".", 1)[0])
    assert detail[("us-east", "cluster id")] == kafka_pair.cluster("us-east").cluster_id
    assert detail[("us-east", "read groups")] == "us-east->us-west"  # the flow's own group
    code, output = _doctor(str(kafka_pair.dir / "topology.yaml"))
    assert code == 0, output
    assert output.count("ok ") == len(checks) and "All 22 checks passed" in output


def test_wrong_sasl_password_fails_credentials_and_skips_the_rest(kafka_sasl, monkeypatch):
    monkeypatch.setenv(PASSWORD_VAR, "wrong-password")
    file = str(kafka_sasl.dir / "topology.yaml")
    code, output = _doctor(file, "--timeout", "2", "--format", "json")
    assert code == 1
    checks = {c["check"]: c for c in json.loads(output)["checks"]}
    assert checks["reachable"]["ok"]
    assert not checks["credentials"]["ok"] and "SASL authentication failed" in checks["credentials"]["detail"]
    assert all(not checks[n]["ok"] and checks[n]["detail"].startswith("skipped") for n in CHECKS[2:])
    assert "wrong-password" not in output


def test_unreachable_cluster_skips_every_later_check(kafka_pair, tmp_path):
    text = (kafka_pair.dir / "topology.yaml").read_text()
    port = kafka_pair.cluster("us-west").nodes[0].port
    file = tmp_path / "mmplan.yaml"
    file.write_text(text.replace(f"127.0.0.1:{port}", "127.0.0.1:1"))
    checks = [c for c in run_doctor(load_topology(file).topology, timeout=2) if c.cluster == "us-west"]
    assert not checks[0].ok and "127.0.0.1:1" in checks[0].detail
    assert all(c.detail == "skipped: not reachable" and not c.ok for c in checks[1:])
    code, output = _doctor(str(file), "--timeout", "2")
    assert code == 1 and "FAIL" in output


@pytest.fixture
def restricted_user(kafka_sasl, clients):
    """A SCRAM user who may connect and describe topics but is denied everything else mmplan needs."""
    admin = clients.admin(kafka_sasl.kafka_config("secure"))
    user, password = f"doctor-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    assert admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(user, "SCRAM-SHA-512", password)]) == {user: None}

    def deny(kind, name, operation):
        return ACL(f"User:{user}", "*", operation, ACLPermissionType.DENY,
                   ResourcePattern(kind, name, ACLResourcePatternType.LITERAL))

    acls = [deny(ResourceType.CLUSTER, "kafka-cluster", op)
            for op in (ACLOperation.CREATE, ACLOperation.ALTER, ACLOperation.DESCRIBE)]
    acls += [deny(ResourceType.TOPIC, PROBE_TOPIC, op) for op in (ACLOperation.CREATE, ACLOperation.ALTER_CONFIGS)]
    acls += [deny(ResourceType.GROUP, "*", ACLOperation.DESCRIBE)]
    assert admin.create_acls(acls)["failed"] == []
    yield user, password
    admin.delete_acls(acls)
    admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, "SCRAM-SHA-512")])


def test_missing_permissions_are_each_named(kafka_sasl, restricted_user, monkeypatch, tmp_path):
    user, password = restricted_user
    monkeypatch.setenv("DOCTOR_TEST_PASSWORD", password)
    text = (kafka_sasl.dir / "topology.yaml").read_text()
    file = tmp_path / "mmplan.yaml"
    file.write_text(text.replace("sasl_username: mmplan", f"sasl_username: {user}")
                    .replace(PASSWORD_VAR, "DOCTOR_TEST_PASSWORD"))
    checks = {c.name: c for c in run_doctor(load_topology(file).topology, timeout=10)}
    passed = {"reachable", "credentials", "kafka version", "brokers", "cluster id", "describe topics"}
    assert {n for n, c in checks.items() if c.ok} == passed
    assert user in checks["credentials"].detail
    for name in set(CHECKS) - passed:
        assert checks[name].detail.startswith("not authorized"), (name, checks[name].detail)
    assert "Alter on the cluster" in checks["create ACLs"].detail
    # The same principal's live state: ACLs it may not describe are reported unreadable, not as a failure.
    topology = load_topology(file).topology
    with Admin.connect("secure", topology.clusters["secure"]) as admin:
        state = admin.read_state()
    assert (state.acls, state.acls_readable) == ([], False)
