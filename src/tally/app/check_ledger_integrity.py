"""The ledger integrity check: prove the invariants from the data, report every discrepancy.

It never "fixes" anything: a discrepancy is a bug or tampering, and a person must look. Each run is
recorded in `integrity_runs`; the worker runs it on a schedule and exports the count as a metric.

Checks (each a query that returns the offending rows, so an empty result is a pass):
- transaction_must_balance: every transaction's debits equal its credits in every unit;
- entry_count_must_match: a transaction has exactly the entries it was written with;
- entry_must_reference_transaction, entry_must_reference_account: no entry without its transaction
  or its account, no transaction without its tenant (the write path guarantees these; no foreign
  key does, see migration 0006);
- entry_must_match_transaction: entries carry their transaction's phase and effective time;
- entry_unit_must_match_account: an entry is in its account's unit;
- cached_balance_must_equal_entries: the four cached counters equal the sums of the entries;
- balance_must_respect_minimum: no account is below its floor;
- resolution_must_resolve_pending: posts and voids resolve pending transactions only, and a post
  moves no more than was reserved for each account and direction;
- reversal_must_mirror_original: a reversal has the original's entries in opposite directions.

The invoicing invariants (receivables, postings of finalized invoices, usage billed once) run in
the same snapshot; they are described in check_invoice_integrity.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.check_invoice_integrity import INVOICE_CHECKS

# Cap what one run reports per check; the count is still exact.
DISCREPANCIES_REPORTED_MAX = 1_000

_TENANT = "(%(tenant_id)s::uuid IS NULL OR {alias}.tenant_id = %(tenant_id)s::uuid)"

CHECKS: dict[str, str] = {
    "transaction_must_balance": """
        SELECT e.tenant_id, e.transaction_id::text, jsonb_build_object('unit', e.unit_code,
               'net', sum(CASE e.direction WHEN 'debit' THEN e.amount ELSE -e.amount END))
        FROM ledger_entries e WHERE {tenant_e}
        GROUP BY e.tenant_id, e.transaction_id, e.unit_code
        HAVING sum(CASE e.direction WHEN 'debit' THEN e.amount ELSE -e.amount END) <> 0""",
    "entry_count_must_match": """
        SELECT t.tenant_id, t.id::text, jsonb_build_object('expected', t.entry_count, 'found', count(e.id))
        FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id
        WHERE {tenant_t}
        GROUP BY t.tenant_id, t.id, t.entry_count HAVING count(e.id) <> t.entry_count""",
    "entry_must_reference_transaction": """
        SELECT e.tenant_id, e.id::text, jsonb_build_object('transaction', e.transaction_id)
        FROM ledger_entries e LEFT JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE {tenant_e} AND t.id IS NULL""",
    "entry_must_reference_account": """
        SELECT e.tenant_id, e.id::text, jsonb_build_object('account', e.account_id)
        FROM ledger_entries e LEFT JOIN ledger_accounts a ON a.id = e.account_id
        WHERE {tenant_e} AND a.id IS NULL""",
    "transaction_must_belong_to_a_tenant": """
        SELECT t.tenant_id, t.id::text, jsonb_build_object('tenant', t.tenant_id)
        FROM ledger_transactions t LEFT JOIN tenants n ON n.id = t.tenant_id
        WHERE {tenant_t} AND n.id IS NULL""",
    "entry_must_match_transaction": """
        SELECT e.tenant_id, e.id::text, jsonb_build_object('transaction', t.id, 'phase', e.phase, 'kind', t.kind)
        FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE {tenant_e} AND (e.tenant_id <> t.tenant_id OR e.effective_at <> t.effective_at
              OR e.phase <> CASE t.kind WHEN 'pending' THEN 'pending' ELSE 'posted' END)""",
    "entry_unit_must_match_account": """
        SELECT e.tenant_id, e.id::text, jsonb_build_object('entry_unit', e.unit_code, 'account_unit', a.unit_code)
        FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
        WHERE {tenant_e} AND (e.unit_code <> a.unit_code OR e.tenant_id <> a.tenant_id)""",
    "cached_balance_must_equal_entries": """
        WITH sums AS (
            SELECT e.account_id,
                sum(e.amount) FILTER (WHERE e.phase = 'posted' AND e.direction = 'debit') AS debits_posted,
                sum(e.amount) FILTER (WHERE e.phase = 'posted' AND e.direction = 'credit') AS credits_posted,
                sum(e.amount) FILTER (WHERE e.phase = 'pending' AND e.direction = 'debit'
                    AND NOT EXISTS (SELECT 1 FROM ledger_transactions r
                                    WHERE r.pending_transaction_id = e.transaction_id))
                    AS debits_pending,
                sum(e.amount) FILTER (WHERE e.phase = 'pending' AND e.direction = 'credit'
                    AND NOT EXISTS (SELECT 1 FROM ledger_transactions r
                                    WHERE r.pending_transaction_id = e.transaction_id))
                    AS credits_pending
            FROM ledger_entries e WHERE {tenant_e} GROUP BY e.account_id
        )
        SELECT a.tenant_id, a.id::text, jsonb_build_object(
            'cached', jsonb_build_array(a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending),
            'entries', jsonb_build_array(coalesce(s.debits_posted, 0), coalesce(s.credits_posted, 0),
                                         coalesce(s.debits_pending, 0), coalesce(s.credits_pending, 0)))
        FROM ledger_accounts a LEFT JOIN sums s ON s.account_id = a.id
        WHERE {tenant_a} AND (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending) IS DISTINCT FROM
              (coalesce(s.debits_posted, 0), coalesce(s.credits_posted, 0),
               coalesce(s.debits_pending, 0), coalesce(s.credits_pending, 0))""",
    "balance_must_respect_minimum": """
        SELECT a.tenant_id, a.id::text, jsonb_build_object('minimum', a.minimum_balance)
        FROM ledger_accounts a
        WHERE {tenant_a} AND a.minimum_balance IS NOT NULL AND
              CASE a.normal_balance WHEN 'debit' THEN a.debits_posted - a.credits_posted - a.credits_pending
                   ELSE a.credits_posted - a.debits_posted - a.debits_pending END < a.minimum_balance""",
    "resolution_must_resolve_pending": """
        WITH resolutions AS (
            SELECT r.tenant_id, r.id, r.pending_transaction_id, p.kind AS pending_kind
            FROM ledger_transactions r JOIN ledger_transactions p ON p.id = r.pending_transaction_id
            WHERE {tenant_r}
        ), excess AS (
            SELECT r.tenant_id, r.id
            FROM resolutions r
            JOIN ledger_entries posted ON posted.transaction_id = r.id
            GROUP BY r.tenant_id, r.id, r.pending_transaction_id, posted.account_id, posted.direction
            HAVING sum(posted.amount) > coalesce((
                SELECT sum(reserved.amount) FROM ledger_entries reserved
                WHERE reserved.transaction_id = r.pending_transaction_id
                  AND reserved.account_id = posted.account_id AND reserved.direction = posted.direction), 0)
        )
        SELECT tenant_id, id::text, jsonb_build_object('reason', 'resolves a non-pending transaction')
        FROM resolutions WHERE pending_kind <> 'pending'
        UNION ALL
        SELECT DISTINCT tenant_id, id::text, jsonb_build_object('reason', 'posts more than was reserved')
        FROM excess""",
    "reversal_must_mirror_original": """
        SELECT r.tenant_id, r.id::text, jsonb_build_object('reverses', r.reverses_transaction_id)
        FROM ledger_transactions r
        WHERE {tenant_r} AND r.reverses_transaction_id IS NOT NULL AND EXISTS (
            (SELECT account_id, direction, amount, entry_index FROM ledger_entries WHERE transaction_id = r.id
             EXCEPT
             SELECT account_id, CASE direction WHEN 'debit' THEN 'credit' ELSE 'debit' END, amount, entry_index
             FROM ledger_entries WHERE transaction_id = r.reverses_transaction_id)
            UNION ALL
            (SELECT account_id, CASE direction WHEN 'debit' THEN 'credit' ELSE 'debit' END, amount, entry_index
             FROM ledger_entries WHERE transaction_id = r.reverses_transaction_id
             EXCEPT
             SELECT account_id, direction, amount, entry_index FROM ledger_entries WHERE transaction_id = r.id))""",
}


# Every check the job runs; each query names its tables' aliases in `{tenant_<alias>}`.
ALL_CHECKS: dict[str, str] = {**CHECKS, **INVOICE_CHECKS}
_ALIASES = ("a", "e", "i", "l", "r", "t")


@dataclass(frozen=True, slots=True)
class Discrepancy:
    check: str
    tenant_id: uuid.UUID
    object_id: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    id: uuid.UUID
    started_at: datetime
    finished_at: datetime
    tenant_id: uuid.UUID | None
    checks_run: int
    discrepancy_count: int
    discrepancies: list[Discrepancy] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.discrepancy_count == 0


def run_integrity_check(engine: Engine, clock: Clock, tenant_id: uuid.UUID | None = None) -> IntegrityReport:
    """Run every check (for one tenant, or all), record the run, and return the report.

    The checks read one consistent snapshot (REPEATABLE READ), so concurrent postings cannot make
    a correct ledger look wrong.
    """
    started_at = clock.now()
    discrepancies: list[Discrepancy] = []
    count = 0
    with psycopg_transaction(engine) as connection:
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for name, query in ALL_CHECKS.items():
            sql = query.format(**{f"tenant_{alias}": _TENANT.format(alias=alias) for alias in _ALIASES})
            rows = connection.execute(sql, {"tenant_id": tenant_id}).fetchall()
            count += len(rows)
            discrepancies.extend(Discrepancy(name, row[0], row[1], row[2]) for row in rows[:DISCREPANCIES_REPORTED_MAX])
    finished_at = clock.now()
    report = IntegrityReport(
        id=new_id(),
        started_at=started_at,
        finished_at=finished_at,
        tenant_id=tenant_id,
        checks_run=len(ALL_CHECKS),
        discrepancy_count=count,
        discrepancies=discrepancies,
    )
    with psycopg_transaction(engine) as connection:
        connection.execute(
            """INSERT INTO integrity_runs (id, started_at, finished_at, tenant_id, checks_run, discrepancy_count,
                                           discrepancies) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (
                report.id,
                started_at,
                finished_at,
                tenant_id,
                report.checks_run,
                count,
                Jsonb(
                    [
                        {
                            "check": d.check,
                            "tenant_id": str(d.tenant_id),
                            "object_id": d.object_id,
                            "detail": json.loads(json.dumps(d.detail, default=str)),
                        }
                        for d in discrepancies
                    ]
                ),
            ),
        )
    return report
