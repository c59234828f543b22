"""The usage benchmark as a script: `python bench/usage.py [options]` is `tally bench usage [options]`."""

from __future__ import annotations

import sys

import tally.cli.usage  # noqa: F401 - registers `usage` on the bench app
from tally.cli.bench import app

if __name__ == "__main__":
    app(args=["usage", *sys.argv[1:]], prog_name="bench/usage.py")
