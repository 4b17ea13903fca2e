"""The receiver's limits: how long it waits, and for how much, before it says no.

An unauthenticated client must not tie the receiver up, and a database that hangs must
not hold a sender past its own timeout (senders wait 12 to 30 s for an answer: the design
notes' reference/source-webhooks.md): past each bound the answer is a refusal that says why.
Each is a ``PLANHAT_SYNC_WEB_<NAME>`` setting (``worker.runtime.settings.WebSettings``).

Where each is enforced:

    max_header_bytes, header_timeout   the HTTP server (``worker.intake.serving``): 431, 408
    body_timeout, database_wait        the app (``worker.intake.receiver``): 408, 503
    group_window, group_size           not limits: how the inbox gathers events to commit
    max_in_flight                      ``InFlightLimit`` below: 503
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverLimits:
    # Bytes of a request's head (request line and headers). Webhook senders send about 1
    # KiB; 16 KiB is h11's and Node's default. Past it: 431, without reading the rest.
    max_header_bytes: int = 16 * 1024
    # Seconds a connection may take to send a complete head, counted from when it opened
    # or got its last answer: idle and slow ("slowloris") sockets are closed (408).
    header_timeout: float = 10.0
    # Seconds to receive the whole body once the head is in: past it, 408.
    body_timeout: float = 10.0
    # Webhooks in progress at once in one process; more are a 503 at once. Each holds at
    # most its body (1 MiB) and, on PostgreSQL, waits for one of 10 pooled connections.
    max_in_flight: int = 64
    # Seconds a webhook waits for the database (connection, INSERT) before it is a 503
    # with Retry-After: nothing was stored, the sender tries again later.
    database_wait: float = 5.0
    retry_after: int = 5  # seconds, in the Retry-After of a 503
    # Group commit (``worker.intake.group``): concurrent webhooks share one INSERT, commit
    # and enqueue. A group gathers at most this many seconds after its first event (while
    # the one before it commits, it gathers anyway) ...
    group_window: float = 0.002
    # ... and holds at most this many events (the in-flight limit bounds it too).
    group_size: int = 64


class InFlightLimit:
    """At most ``limit`` webhooks in progress in this process (an event loop: no lock);
    more are answered 503 with Retry-After before their body is read.

    Not uvicorn's ``limit_concurrency``: that one counts open connections too, so idle
    sockets would make every sender's webhook a 503, and its 503 says nothing and sets no
    Retry-After."""

    def __init__(self, app: ASGIApp, limit: int, retry_after: int = 1) -> None:
        self.app = app
        self._limit = limit
        self._retry_after = retry_after
        self._in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/webhooks/"):
            await self.app(scope, receive, send)
            return
        if self._in_flight >= self._limit:
            busy = JSONResponse(
                {"error": f"more than {self._limit} webhooks at once here; retry later"},
                status_code=503,
                headers={"Retry-After": str(self._retry_after)},
            )
            await busy(scope, receive, send)
            return
        self._in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._in_flight -= 1
