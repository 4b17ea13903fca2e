"""A stand-in (``planhat-sync zendesk-sandbox``, ``intercom-sandbox``) as a process of its
own, as the service it stands in for is: started, waited for until it answers
``GET /_sandbox/stats``, stopped."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Self

import httpx

# -c, not -m worker.cli.main: runpy warns when the package already imported it.
RUN = [sys.executable, "-c", "from worker.cli.main import main; main()"]


class StandInProcess:
    name = "stand-in"  # in its error: "the Zendesk stand-in did not start on …"

    def __init__(self, port: int, command: list[str]) -> None:
        """``command``: the ``planhat-sync`` subcommand and its options."""
        self.url = f"http://127.0.0.1:{port}"
        self._command = [*RUN, *command]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Self:
        self._process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL)  # noqa: S603
        deadline = time.monotonic() + timeout
        process = self._process
        while True:
            try:
                httpx.get(f"{self.url}/_sandbox/stats", timeout=1.0).raise_for_status()
                return self
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the {self.name} did not start on {self.url}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
