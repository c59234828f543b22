"""What every command needs: a built `Tally`, closed when the command ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

from tally.bootstrap import Tally, build

console = Console()
error_console = Console(stderr=True)


@contextmanager
def open_tally(*, migrate: bool = True) -> Iterator[Tally]:
    tally = build(migrate=migrate)
    try:
        yield tally
    finally:
        tally.close()
