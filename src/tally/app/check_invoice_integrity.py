"""The invoicing invariants, checked by the integrity job alongside the ledger's (each a query that
returns the offending rows, so an empty result is a pass; see check_ledger_integrity).

- receivable_must_equal_open_invoices: per customer and currency, the receivable account's posted
  balance equals what their open and uncollectible invoices still ask (amount due − paid − credit
  notes against it). It reads the accounts' cached balances, which another check proves equal to
  the entries, and one aggregate over the invoices owed: no entry is scanned.
- invoice_must_be_posted_once: a finalized invoice has exactly the ledger transactions decided
  with its draft — one per stored posting, keyed `invoice:<id>:finalized:<n>` for n = 0 … count−1,
  with the stored templates in order — and a draft or an unknown invoice has none.
- usage_must_be_billed_once: per customer and meter, the usage windows of billed usage lines never
  overlap, so every usage event that was billed lies in exactly one line's window. Windows come
  from the first line of each key (corrections share their key's windows) on finalized invoices
  (void ones included: a void forgives, its usage stays billed), one row per window of a price
  however many dimension groups it was billed in. Sorted by start, a window overlaps an earlier
  one exactly when it starts before the furthest end seen so far — one window function over the
  windows, no self-join and no scan of the events. An overlap is reported even when no event fell
  in it: windows that overlap are a billing bug either way.
- late_usage_must_reach_an_invoice: no `late_usage` flag is resolved `beyond_horizon` (usage that
  arrived late for a period no run measured again, so it was never billed). Every run measures the
  periods holding open flags again, so a row here is a bug, and revenue to recover by hand.
"""

from __future__ import annotations

INVOICE_CHECKS: dict[str, str] = {
    "receivable_must_equal_open_invoices": """
        WITH owed AS (
            SELECT i.tenant_id, c.external_id AS customer, i.currency,
                   sum(i.amount_due_minor - i.amount_paid_minor - i.credited_against_due_minor) AS amount_minor
            FROM invoices i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
            WHERE {tenant_i} AND i.status IN ('open', 'uncollectible')
            GROUP BY i.tenant_id, c.external_id, i.currency
        ), held AS (
            SELECT a.tenant_id, a.customer_id AS customer, a.unit_code AS currency,
                   a.debits_posted - a.credits_posted AS amount_minor
            FROM ledger_accounts a
            WHERE {tenant_a} AND a.code = 'accounts_receivable' AND a.customer_id IS NOT NULL
        )
        SELECT coalesce(h.tenant_id, o.tenant_id), coalesce(h.customer, o.customer) || ':' ||
               coalesce(h.currency, o.currency),
               jsonb_build_object('receivable_minor', coalesce(h.amount_minor, 0),
                                  'open_invoices_minor', coalesce(o.amount_minor, 0))
        FROM held h FULL JOIN owed o
            ON o.tenant_id = h.tenant_id AND o.customer = h.customer AND o.currency = h.currency
        WHERE coalesce(h.amount_minor, 0) <> coalesce(o.amount_minor, 0)""",
    "invoice_must_be_posted_once": """
        WITH posted AS (
            SELECT t.tenant_id, split_part(t.idempotency_key, ':', 2) AS invoice_id,
                   count(*) AS found,
                   array_agg(split_part(t.idempotency_key, ':', 4) ORDER BY split_part(t.idempotency_key, ':', 4)::int)
                       AS indexes,
                   array_agg(t.template ORDER BY split_part(t.idempotency_key, ':', 4)::int) AS templates
            FROM ledger_transactions t
            WHERE {tenant_t} AND t.idempotency_key LIKE 'invoice:%%:finalized:%%'
            GROUP BY t.tenant_id, split_part(t.idempotency_key, ':', 2)
        ), decided AS (
            SELECT i.tenant_id, i.id::text AS invoice_id, i.status,
                   CASE WHEN i.status = 'draft' THEN 0 ELSE jsonb_array_length(i.postings) END AS expected,
                   ARRAY(SELECT (n - 1)::text FROM jsonb_array_elements(i.postings) WITH ORDINALITY AS p(posting, n)
                         ORDER BY n) AS indexes,
                   ARRAY(SELECT p.posting ->> 'template'
                         FROM jsonb_array_elements(i.postings) WITH ORDINALITY AS p(posting, n) ORDER BY n) AS templates
            FROM invoices i WHERE {tenant_i}
        )
        SELECT coalesce(d.tenant_id, p.tenant_id), coalesce(d.invoice_id, p.invoice_id),
               jsonb_build_object('status', coalesce(d.status, 'unknown'), 'expected', coalesce(d.expected, 0),
                                  'found', coalesce(p.found, 0))
        FROM decided d FULL JOIN posted p ON p.tenant_id = d.tenant_id AND p.invoice_id = d.invoice_id
        WHERE coalesce(d.expected, 0) <> coalesce(p.found, 0)
           OR (p.found IS NOT NULL AND d.status <> 'draft'
               AND (p.indexes <> d.indexes OR p.templates <> d.templates))""",
    "usage_must_be_billed_once": """
        WITH windows AS (
            SELECT DISTINCT l.tenant_id, l.customer_id, l.explanation -> 'usage' ->> 'meter' AS meter,
                   l.subscription_id, l.price_id,
                   (w.item ->> 'start')::timestamptz AS window_start, (w.item ->> 'end')::timestamptz AS window_end
            FROM invoice_lines l
            JOIN invoices i ON i.id = l.invoice_id
            CROSS JOIN LATERAL jsonb_array_elements(l.explanation -> 'usage' -> 'windows') AS w(item)
            WHERE {tenant_l} AND l.kind = 'usage' AND l.sequence = 0 AND i.status <> 'draft'
        ), ordered AS (
            SELECT *, max(window_end) OVER (
                       PARTITION BY tenant_id, customer_id, meter
                       ORDER BY window_start, window_end, subscription_id, price_id
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS covered_until
            FROM windows
        )
        SELECT tenant_id, customer_id::text,
               jsonb_build_object('meter', meter, 'subscription_id', subscription_id, 'price_id', price_id,
                                  'window_start', window_start, 'window_end', window_end,
                                  'earlier_windows_end', covered_until)
        FROM ordered WHERE window_start < covered_until""",
    "late_usage_must_reach_an_invoice": """
        SELECT l.tenant_id, l.id::text,
               jsonb_build_object('customer', l.customer, 'event_id', l.event_id, 'timestamp', l."timestamp",
                                  'kind', l.kind, 'resolved_at', l.resolved_at)
        FROM late_usage l
        WHERE {tenant_l} AND l.resolution = 'beyond_horizon'""",
}
