"""Tally's own jobs: the scheduled ledger integrity check, the purge of expired idempotency keys, the
billing run, the billing threshold evaluation and the finalization of drafts past their grace period.

Each job is a workflow of steps. A step's result is checkpointed in PostgreSQL when it returns, so a
worker killed mid-job resumes at the first step that had not returned; the step that was running when
the worker died runs again. Steps therefore call use cases that are safe to repeat.

The use cases are imported inside the steps: the worker does not depend on them at import time, and a
build that lacks one skips that job with a warning instead of failing to start.
"""

from __future__ import annotations

import logging
from datetime import datetime

from dbos import DBOS

from tally.worker import metrics
from tally.worker.context import current_tally
from tally.worker.registry import define_queue, define_schedule

logger = logging.getLogger(__name__)

# One check at a time across all workers: a slow check is never overlapped by the next one.
LEDGER_INTEGRITY_QUEUE = define_queue("tally_ledger_integrity", global_concurrency=1)
# Housekeeping that must not pile up or run in parallel with itself.
MAINTENANCE_QUEUE = define_queue("tally_maintenance", global_concurrency=1)
# One billing run at a time (runs of one customer serialize on its lock anyway).
BILLING_QUEUE = define_queue("tally_billing", global_concurrency=1)

_INTEGRITY_MODULE = "tally.app.check_ledger_integrity"
_IDEMPOTENCY_MODULE = "tally.app.idempotency"


# A transient database failure is retried; a check that keeps failing fails the run, which
# `tally jobs list` shows and the stale last-run gauge reveals.
@DBOS.step(name="tally.ledger_integrity_check.run", retries_allowed=True, interval_seconds=5, max_attempts=3)
def run_ledger_integrity_check() -> int | None:
    """Run the check; returns the number of discrepancies, or None if this build has no check."""
    try:
        from tally.app.check_ledger_integrity import run_integrity_check
    except ImportError as error:
        if error.name != _INTEGRITY_MODULE:
            raise
        logger.warning("ledger integrity check skipped: %s is not available (%s)", _INTEGRITY_MODULE, error)
        return None
    tally = current_tally()
    # Writes one integrity_runs row. Repeating the step after a crash only records a second run.
    report = run_integrity_check(tally.engine, tally.clock)
    discrepancy_count = int(report.discrepancy_count)
    metrics.record_ledger_integrity_run(discrepancy_count, tally.clock.now())
    if discrepancy_count:
        logger.error("ledger integrity check found %d discrepancies", discrepancy_count)
    else:
        logger.info("ledger integrity check found no discrepancies")
    return discrepancy_count


@DBOS.workflow(name="tally.ledger_integrity_check")
def ledger_integrity_check(scheduled_at: datetime, context: object) -> int | None:
    """The scheduled integrity check (`settings.integrity_check_cron`)."""
    return run_ledger_integrity_check()


@DBOS.step(name="tally.purge_expired_idempotent_requests.run", retries_allowed=True, interval_seconds=5, max_attempts=3)
def run_purge_expired_idempotent_requests() -> int | None:
    """Delete expired Idempotency-Key records; returns how many, or None if this build has no purge."""
    try:
        from tally.app.idempotency import purge_expired_idempotent_requests
    except ImportError as error:
        if error.name != _IDEMPOTENCY_MODULE:
            raise
        logger.warning("idempotency purge skipped: %s is not available (%s)", _IDEMPOTENCY_MODULE, error)
        return None
    tally = current_tally()
    # Deleting what has expired is naturally safe to repeat.
    return purge_expired_idempotent_requests(
        tally.engine, tally.clock.now(), retention_hours=tally.settings.idempotency_retention_hours
    )


@DBOS.workflow(name="tally.purge_expired_idempotent_requests")
def purge_expired_idempotent_requests(scheduled_at: datetime, context: object) -> int | None:
    """The scheduled purge (`settings.idempotency_purge_cron`)."""
    return run_purge_expired_idempotent_requests()


@DBOS.step(name="tally.billing_run.run", retries_allowed=True, interval_seconds=5, max_attempts=3)
def run_billing_step() -> int:
    """Bill every customer with something due by its clock; returns how many drafts changed. Safe to
    repeat: a billing run that runs again changes nothing."""
    from tally.app.run_billing import run_billing
    from tally.core.rejections import Rejected

    tally = current_tally()
    try:
        result = run_billing(tally.engine, tally.clock)
    except Rejected as rejected:
        if rejected.rejection.code != "billing_run_in_progress":
            raise
        # Another worker's run over every tenant is under way: it bills what this one would.
        logger.info("billing run skipped: another run over every tenant is under way")
        return 0
    for refused in result.refused:
        logger.error(
            "billing run refused a customer: %s",
            refused.rejection.code if refused.rejection else "unknown",
            extra={"tenant_id": str(refused.tenant_id), "customer_id": str(refused.customer_id)},
        )
    return result.changed


@DBOS.workflow(name="tally.billing_run")
def billing_run(scheduled_at: datetime, context: object) -> int:
    """The scheduled billing run (`settings.billing_run_cron`)."""
    return run_billing_step()


@DBOS.step(name="tally.credit_expiry.run", retries_allowed=True, interval_seconds=5, max_attempts=3)
def run_credit_expiry_step() -> int:
    """Expire every credit grant expired by its customer's clock with something left; returns how many
    grants expired. Safe to repeat: an expired grant has nothing left to expire."""
    from tally.app.expire_credit_grants import expire_credit_grants

    tally = current_tally()
    result = expire_credit_grants(tally.engine, tally.clock)
    for item in result.customers:
        if item.rejection is not None:
            logger.error(
                "credit expiry refused a customer: %s",
                item.rejection.code,
                extra={"tenant_id": str(item.tenant_id), "customer_id": str(item.customer_id)},
            )
    return result.grants_expired


@DBOS.workflow(name="tally.credit_expiry")
def credit_expiry(scheduled_at: datetime, context: object) -> int:
    """The scheduled expiry of credit grants (`settings.credit_expiry_cron`)."""
    return run_credit_expiry_step()


@DBOS.step(name="tally.billing_threshold_evaluation.run", retries_allowed=True, interval_seconds=5, max_attempts=3)
def run_billing_threshold_step() -> int:
    """Invoice every customer whose subscriptions' usage so far passed their billing threshold;
    returns how many threshold invoices were issued. Safe to repeat: what an earlier run invoiced is
    billed, so a repeat finds nothing accrued (and the line constraint refuses a second bill)."""
    from tally.app.evaluate_billing_thresholds import evaluate_billing_thresholds

    tally = current_tally()
    result = evaluate_billing_thresholds(tally.engine, tally.clock)
    for refused in result.refused:
        logger.error(
            "threshold evaluation refused a customer: %s",
            refused.rejection.code if refused.rejection else "unknown",
            extra={"tenant_id": str(refused.tenant_id), "customer_id": str(refused.customer_id)},
        )
    return len(result.invoiced)


@DBOS.workflow(name="tally.billing_threshold_evaluation")
def billing_threshold_evaluation(scheduled_at: datetime, context: object) -> int:
    """The scheduled threshold evaluation (`settings.billing_threshold_cron`)."""
    return run_billing_threshold_step()


@DBOS.step(name="tally.invoice_finalization.run", retries_allowed=True, interval_seconds=5, max_attempts=3)
def run_invoice_finalization_step() -> int:
    """Refresh and finalize every draft whose grace period has passed by its customer's clock; returns
    how many were finalized. Safe to repeat: a finalized invoice is no longer a draft to find."""
    from tally.app.finalize_due_invoices import finalize_due_invoices, grace_period_of_hours

    tally = current_tally()
    if not tally.settings.invoice_auto_finalize:
        return 0
    result = finalize_due_invoices(
        tally.engine, tally.clock, grace_period=grace_period_of_hours(tally.settings.invoice_grace_period_hours)
    )
    for refused in result.refused:
        logger.error(
            "invoice finalization refused a customer: %s",
            refused.rejection.code if refused.rejection else "unknown",
            extra={"tenant_id": str(refused.tenant_id), "customer_id": str(refused.customer_id)},
        )
    return len(result.finalized)


@DBOS.workflow(name="tally.invoice_finalization")
def invoice_finalization(scheduled_at: datetime, context: object) -> int:
    """The scheduled finalization of drafts past their grace period (`settings.invoice_finalization_cron`)."""
    return run_invoice_finalization_step()


define_schedule("tally.billing_run", billing_run, cron_setting="billing_run_cron", queue_name=BILLING_QUEUE)
# On the billing queue: an expiry and a billing run never overlap (they serialize per customer anyway).
define_schedule("tally.credit_expiry", credit_expiry, cron_setting="credit_expiry_cron", queue_name=BILLING_QUEUE)
# On the billing queue: an evaluation never overlaps a billing run (they serialize per customer anyway).
define_schedule(
    "tally.billing_threshold_evaluation",
    billing_threshold_evaluation,
    cron_setting="billing_threshold_cron",
    queue_name=BILLING_QUEUE,
)
# On the billing queue too: finalizing never overlaps a billing run or an expiry.
define_schedule(
    "tally.invoice_finalization",
    invoice_finalization,
    cron_setting="invoice_finalization_cron",
    queue_name=BILLING_QUEUE,
)
define_schedule(
    "tally.ledger_integrity_check",
    ledger_integrity_check,
    cron_setting="integrity_check_cron",
    queue_name=LEDGER_INTEGRITY_QUEUE,
)
define_schedule(
    "tally.purge_expired_idempotent_requests",
    purge_expired_idempotent_requests,
    cron_setting="idempotency_purge_cron",
    queue_name=MAINTENANCE_QUEUE,
)
