"""Durable jobs (DBOS): workflows, queues and schedules checkpointed in PostgreSQL.

- `runtime`: start and stop the runner (`launch`, `start_in_background`, `shutdown`, `open_client`);
- `jobs`: tally's own jobs (the ledger integrity check, the idempotency purge);
- `registry`: `define_queue`, `define_schedule`;
- `enqueue`: `workflow_id`, `enqueue_once`, `enqueue_once_via_client`;
- `context`: `current_tally()`, for steps;
- `admin`: list workflows, recover a dead worker's work; `metrics`: Prometheus gauges.

Importing them only declares things (decorated workflows, queues, gauges); DBOS is created and
started only by `runtime`. See docs/jobs.md.
"""
