"""The `tally` command. Each command group lives in its own module and registers here."""

from __future__ import annotations

import typer

from tally.cli import (
    api_keys,
    bench,
    catalog,
    charges,
    credits,
    customers,
    db,
    demo,
    events,
    invoices,
    jobs,
    late_usage,
    ledger,
    meters,
    prices,
    server,
    subscriptions,
    tenants,
    usage,
    worker,
)

app = typer.Typer(
    name="tally",
    help="Tally: usage-based billing with a double-entry ledger.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(db.app, name="db")
app.add_typer(tenants.app, name="tenants")
app.add_typer(api_keys.app, name="api-keys")
app.add_typer(ledger.app, name="ledger")
app.add_typer(bench.app, name="bench")
app.add_typer(jobs.app, name="jobs")
app.add_typer(events.app, name="events")
app.add_typer(meters.app, name="meters")
app.add_typer(usage.app, name="usage")
app.add_typer(prices.app, name="price")
app.add_typer(catalog.app, name="catalog")
app.add_typer(customers.app, name="customers")
app.add_typer(customers.test_clocks_app, name="test-clocks")
app.add_typer(credits.coupons_app, name="coupon")
app.add_typer(credits.credits_app, name="credit")
app.add_typer(credits.commitments_app, name="commitment")
app.add_typer(credits.tax_rates_app, name="tax-rate")
app.add_typer(subscriptions.app, name="subscriptions")
app.add_typer(invoices.app, name="invoice")
app.add_typer(late_usage.app, name="late-usage")
app.add_typer(charges.app, name="charge")
server.register(app)
worker.register(app)
demo.register(app)


def main() -> None:
    app()
