"""Adapters: PostgreSQL, and later Stripe, outbound webhooks and documents. SQL rows live only here."""
