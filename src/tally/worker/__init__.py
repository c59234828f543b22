"""Durable jobs (DBOS): workflows, queues and schedules checkpointed in PostgreSQL."""
