"""The double-entry ledger's pure rules: accounts, transactions, balances, the chart, templates."""
