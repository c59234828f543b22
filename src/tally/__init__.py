"""Tally: usage-based billing with a double-entry ledger as the source of truth for money."""

__version__ = "0.1.0"
