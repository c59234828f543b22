"""The ledger benchmark as a script: `python bench/ledger.py [options]` is `tally bench ledger [options]`."""

from __future__ import annotations

import sys

from tally.cli.bench import app

if __name__ == "__main__":
    app(args=["ledger", *sys.argv[1:]], prog_name="bench/ledger.py")
