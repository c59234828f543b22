"""The invoice benchmark as a script: `python bench/invoice.py [options]` is `tally bench invoice [options]`."""

from __future__ import annotations

import sys

from tally.cli.bench import app

if __name__ == "__main__":
    app(args=["invoice", *sys.argv[1:]], prog_name="bench/invoice.py")
