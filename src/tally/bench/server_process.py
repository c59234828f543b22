"""`tally serve` as a child process, for benchmarks and crash tests: start, wait until ready, kill.

The server runs in a session of its own, so `kill()` reaches the uvicorn supervisor and every worker
process at once, as a machine losing power would.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
_SERVE = "from tally.cli import main; main()"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`tally serve --workers N` on `127.0.0.1:port` against `database_url`; output goes to `log_path`."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        port: int | None = None,
        workers: int = 1,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.port = port or free_port()
        self.workers = workers
        self.environment = environment or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the server is already running")
        environment = {
            **os.environ,
            "TALLY_CONFIG_FILE": os.devnull,  # nothing from a tally.toml in the working directory
            "TALLY_DATABASE_URL": self.database_url,
            "TALLY_LOG_LEVEL": "warning",
            "TALLY_LOG_FORMAT": "console",
            **self.environment,
        }
        command = [sys.executable, "-c", _SERVE, "serve", "--port", str(self.port), "--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1}: {' '.join(command[3:])}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> float:
        """Poll `/readyz` until it answers 200; returns the seconds it took."""
        started = time.monotonic()
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the server exited before it was ready:\n{self.output()}")
            with suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    connection.request("GET", "/readyz")
                    if connection.getresponse().status == 200:
                        return time.monotonic() - started
                finally:
                    connection.close()
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"the server was not ready within {timeout_s}s:\n{self.output()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the whole server (supervisor and workers), no goodbye."""
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
        # Workers outlive a supervisor that died first; make sure the session is gone.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def output(self, characters: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except FileNotFoundError:
            return ""
