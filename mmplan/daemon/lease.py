"""One applier among the daemons of a topology, elected by Kafka itself.

Every daemon joins consumer group `mmplan-applier.<name>` on a one-partition lease topic (`mm2-mmplan-lease.internal`
on the topology's first cluster); the member the group assigns partition 0 applies changes, the others only
replicate. The group protocol does the election, and the takeover when the applier dies (after its session
timeout). The membership consumer is the same one the flows use (`Membership`), so no records are read.
"""

from __future__ import annotations

import logging
import time

from kafka import TopicPartition

from mmplan.daemon.membership import Membership
from mmplan.errors import MmplanError
from mmplan.kafka.admin import Admin
from mmplan.kafka.config import client_config
from mmplan.state.snapshot import TopicState
from mmplan.topology.models import Cluster

LEASE_TOPIC = "mm2-mmplan-lease.internal"
LEASE_PARTITION = TopicPartition(LEASE_TOPIC, 0)
METADATA_REFRESH = 2.0  # see membership.METADATA_REFRESH_MAX: a quick first assignment


class Lease:
    """Whether this daemon is the applier; `held` is read by the reconcile before it applies."""

    def __init__(self, alias: str, cluster: Cluster, name: str, log: logging.Logger, timeout: float = 10.0) -> None:
        self.alias = alias
        self.cluster = cluster
        self.group = f"mmplan-applier.{name}"
        self.log = log
        self.timeout = timeout
        self.membership: Membership | None = None
        self._held = False

    def start(self) -> None:
        """Create the lease topic when missing and join the group. Raises MmplanError when the cluster refuses."""
        with Admin.connect(self.alias, self.cluster, self.timeout) as admin:
            if not admin.partitions_of([LEASE_TOPIC]):
                brokers = admin.cluster_info()[1]
                error = admin.create_topics([TopicState(name=LEASE_TOPIC, partitions=1,
                                                        replication_factor=max(1, min(3, brokers)))])[LEASE_TOPIC]
                if error and "already exists" not in error:
                    raise MmplanError(f"cannot create the applier lease topic {LEASE_TOPIC}: {error}",
                                      where=f"cluster {self.alias}",
                                      hint="create it (1 partition) or grant CREATE on it to mmplan's principal")
        self.membership = Membership(client_config(self.alias, self.cluster, self.timeout), self.group,
                                     refresh_s=METADATA_REFRESH, log=self.log)
        self.membership.subscribe({LEASE_TOPIC})
        self.membership.start()

    @property
    def held(self) -> bool:
        """True while this daemon holds the lease (it follows the group's assignments as they arrive). Joins
        (again) when not a member; raises MmplanError when that is refused."""
        m = self.membership
        if m is None or not m.alive:
            if m is not None:
                self.log.warning("applier lease: the group membership ended; joining again")
                self.close()
            self.start()
            m = self.membership
        while m.events:
            kind, value = m.events.popleft()
            if kind == "assigned" and LEASE_PARTITION in value:
                self._held = True
                self.log.info("this daemon is now the applier (group %s)", self.group)
            elif kind == "revoked" and LEASE_PARTITION in value:
                self._held = False
                self.log.info("this daemon is no longer the applier (group %s)", self.group)
            elif kind == "error":
                self._held = False
                self.log.warning("applier lease: %s", value)
        return self._held and m.alive

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the lease (a daemon that gets none waits it all); True when held."""
        deadline = time.monotonic() + timeout
        while not self.held and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.held

    def close(self) -> None:
        if self.membership is not None:
            self.membership.close({}, timeout=5.0)
            self.membership = None
        self._held = False
