"""Stage 6: `mmplan run`, the replication daemon.

- `batches`: pure record-batch work on fetched bytes (walk, filter aborted/control, patch, CRC).
- `mm2_format`: MirrorMaker 2's binary formats (offset syncs; heartbeats and checkpoints later).
- `wire`: broker connections through kafka-python's network layer (fetch, produce, producer ids).
- `flow`: `FlowRunner`, one flow's replication loop: group membership for assignment, fetch,
  forward, produce, offset syncs, progress commits.
- `runner`: all flows of a topology, the reconcile timer (the same plan/apply code), signals.
- `metrics`: Prometheus metrics and `/healthz`.
"""
