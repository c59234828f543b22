"""What a running step may reach: the `Tally` of the process that runs the job runner.

Workflow and step arguments are checkpointed, so they carry plain data (ids, periods); the database
handle and the clock come from the process instead, through `current_tally()`.
"""

from __future__ import annotations

import threading

from tally.bootstrap import Tally


class _Binding:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tally: Tally | None = None


_binding = _Binding()


def current_tally() -> Tally:
    """The `Tally` the job runner was started with. Only steps and workflows call this."""
    with _binding.lock:
        if _binding.tally is None:
            raise RuntimeError("the job runner has not been started in this process (tally.worker.runtime)")
        return _binding.tally


def bind(tally: Tally) -> None:
    with _binding.lock:
        _binding.tally = tally


def unbind() -> None:
    with _binding.lock:
        _binding.tally = None
