"""Shared fixtures: real Kafka clusters from `mmplan.sandbox` and unique names per test.

Kafka fixtures (use them only in tests marked `@pytest.mark.kafka`):
- `kafka_pair`: a session-wide `Sandbox` with clusters `us-east` and `us-west` (1 broker each, plaintext).
  Set MMPLAN_TEST_SANDBOX=<dir> to use an already running `mmplan sandbox up --dir <dir>` instead.
- `us_east`, `us_west`: kafka-python keyword arguments for those clusters, e.g. `KafkaAdminClient(**us_east)`.
- `kafka_three`: a session-wide `Sandbox` with one 3-broker cluster `triple`.
- `kafka_sasl`, `kafka_tls`: session-wide `Sandbox`es, one cluster `secure` behind a SCRAM or TLS listener.
  `sb.kafka_config("secure")` gives the keyword arguments for any such sandbox and alias.
- `fresh_cluster`: a `Sandbox` with one new cluster `fresh`, stopped after the test (for destructive tests).
- `connect_worker`: the REST URL of a session-wide Kafka Connect worker (distributed mode, MirrorMaker 2's
  connectors on its classpath) beside `kafka_pair`, its internal topics on us-west; started only when used.
- `clients`: makes admin/producer/consumer clients from such keyword arguments and closes them after the test.
- `unique`: unique topic and group names for the test (`unique.topic()`, `unique.group()`).
A cluster that cannot start makes the tests that need it ERROR; nothing is skipped.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import signal
import uuid
from pathlib import Path

import pytest

from mmplan import sandbox

REUSE_ENV = "MMPLAN_TEST_SANDBOX"


def pytest_configure(config):
    # A CI runner's SIGTERM becomes a KeyboardInterrupt so fixtures still stop their brokers.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def _sandbox(directory: Path, **options):
    """Start a sandbox for the duration of a fixture; stop it even on failure, Ctrl-C or early exit."""
    stop = functools.partial(sandbox.down, directory)
    atexit.register(stop)
    try:
        yield sandbox.up(directory, **options).sandbox
    finally:
        stop()
        atexit.unregister(stop)


@pytest.fixture(scope="session")
def kafka_pair(tmp_path_factory):
    """Clusters us-east and us-west, one broker each, shared by the whole session."""
    reuse = os.environ.get(REUSE_ENV)
    if reuse:
        sb, clusters = sandbox.status(reuse)
        if not all(c.healthy for c in clusters) or {"us-east", "us-west"} - {c.alias for c in sb.clusters}:
            raise RuntimeError(f"{REUSE_ENV}={reuse}: need healthy clusters us-east and us-west there")
        yield sb
        return
    yield from _sandbox(tmp_path_factory.mktemp("pair"), aliases=["us-east", "us-west"])


@pytest.fixture(scope="session")
def us_east(kafka_pair):
    return kafka_pair.kafka_config("us-east")


@pytest.fixture(scope="session")
def us_west(kafka_pair):
    return kafka_pair.kafka_config("us-west")


@pytest.fixture(scope="session")
def kafka_three(tmp_path_factory):
    """One cluster `triple` of three brokers (node 1 also the controller)."""
    yield from _sandbox(tmp_path_factory.mktemp("three"), aliases=["triple"], brokers=3)


@pytest.fixture(scope="session")
def kafka_sasl(tmp_path_factory):
    """One cluster `secure` whose client listener is SASL_PLAINTEXT with SCRAM-SHA-512."""
    yield from _sandbox(tmp_path_factory.mktemp("sasl"), aliases=["secure"], security="sasl")


@pytest.fixture(scope="session")
def kafka_tls(tmp_path_factory):
    """One cluster `secure` whose client listener is TLS with client certificates."""
    yield from _sandbox(tmp_path_factory.mktemp("tls"), aliases=["secure"], security="tls")


@pytest.fixture(scope="session")
def connect_worker(kafka_pair):
    """A Kafka Connect worker beside kafka_pair, stopped (by its pid) at the end of the session."""
    from mmplan.sandbox import connect

    stop = functools.partial(connect.stop, kafka_pair)
    atexit.register(stop)
    try:
        yield connect.start(kafka_pair).url
    finally:
        stop()
        atexit.unregister(stop)


@pytest.fixture
def fresh_cluster(tmp_path):
    """A new one-broker cluster `fresh` for this test alone."""
    yield from _sandbox(tmp_path / "sandbox", aliases=["fresh"])


class Clients:
    """Creates kafka-python clients and closes them all at the end of the test."""

    def __init__(self):
        self._open = []

    def _keep(self, client):
        self._open.append(client)
        return client

    def admin(self, config: dict, **kwargs):
        from kafka import KafkaAdminClient

        return self._keep(KafkaAdminClient(**config, **kwargs))

    def producer(self, config: dict, **kwargs):
        from kafka import KafkaProducer

        return self._keep(KafkaProducer(**config, **kwargs))

    def consumer(self, config: dict, *topics: str, **kwargs):
        from kafka import KafkaConsumer

        return self._keep(KafkaConsumer(*topics, **config, **kwargs))

    def close(self):
        for client in reversed(self._open):
            client.close()


@pytest.fixture
def clients():
    c = Clients()
    yield c
    c.close()


class Names:
    """Topic and group names unique to one test run, readable in broker logs."""

    def __init__(self, test_name: str):
        self._stem = re.sub(r"[^A-Za-z0-9._-]+", "-", test_name).strip("-")[:60]
        self._run = uuid.uuid4().hex[:8]
        self._count = 0

    def _next(self, kind: str) -> str:
        self._count += 1
        return f"{kind}-{self._stem}-{self._run}-{self._count}"

    def topic(self) -> str:
        return self._next("t")

    def group(self) -> str:
        return self._next("g")


@pytest.fixture
def unique(request):
    return Names(request.node.name)
