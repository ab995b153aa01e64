"""The records mmplan daemons keep in each flow's status topic on the target (`policy.status_topic()`).

Key: `<flow>|<daemon id>` (UTF-8). Value: JSON, see `StatusRecord`. The topic is compacted, so it holds the
newest record of every daemon that ran the flow; a daemon that stops cleanly writes `stopped` at once, one that
dies leaves its last record to age (readers treat a record older than `stale_after` as not running).

The GitOps reconcile's report rides along (fields added later are optional; older records decode with None):
`version` (the topology file hash or git commit running), `applier` (this daemon applies changes), `reconciled_ms`
(its last successful reconcile) and `pending` (changes left by its last reconcile, per reason: held, deferred,
applier, failed).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

STATES = ("started", "running", "retrying", "failed", "stopped")


@dataclass(frozen=True)
class StatusRecord:
    flow: str
    daemon: str  # host:pid:random, unique per process
    state: str  # one of STATES
    time_ms: int  # when this record was written
    interval_ms: int  # how often the daemon rewrites it while running
    error: str | None = None
    version: str | None = None  # the topology file hash or git commit the daemon runs
    applier: bool | None = None  # the daemon is the one applying changes (as of its last reconcile)
    reconciled_ms: int | None = None  # when its last successful reconcile ran
    pending: dict[str, int] | None = None  # changes its last reconcile left, per reason

    REPORT = ("version", "applier", "reconciled_ms", "pending")  # what `reconcile_report` callables return

    def key(self) -> bytes:
        return f"{self.flow}|{self.daemon}".encode()

    def value(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, value: bytes) -> StatusRecord | None:
        """The record in `value`, or None for a value that is not one (written by something else)."""
        try:
            doc = json.loads(value)
            record = cls(**{k: doc.get(k) for k in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return None
        if record.pending is not None and not isinstance(record.pending, dict):
            return replace(record, pending=None)
        return record

    def stale(self, now_ms: int) -> bool:
        """True when a running daemon should have rewritten this record by now (three intervals)."""
        return self.state != "stopped" and now_ms - self.time_ms > 3 * max(self.interval_ms, 1000)
