"""The ingest benchmark as a script: `python bench/ingest.py [options]` is `tally bench ingest [options]`."""

from __future__ import annotations

import sys

from tally.cli.bench import app

if __name__ == "__main__":
    app(args=["ingest", *sys.argv[1:]], prog_name="bench/ingest.py")
