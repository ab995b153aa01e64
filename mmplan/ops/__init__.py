"""Operating replication: `status`, `offsets translate`, `failover`, `failback` and `drill` (issue 7).

- `offsets`, `status`, `failover`: pure computations on plain data (fast unit tests);
- `read`: thin readers of the live clusters through the client layer (`mmplan.kafka`);
- `run`: the commands' I/O, reading with `read` and computing with the pure modules;
- `drill`: a DR drill on a flow, using `run.failover`.
"""
