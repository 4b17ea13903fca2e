"""How ``planhat-sync web`` serves the receiver: uvicorn, with the limits it lacks.

uvicorn (0.30-0.54) with httptools, its default when installed, caps no request head:
llhttp has no header size limit, and uvicorn keeps every header until the head is
complete, so a 32 MiB header is 32 MiB of memory per socket. Nor does it time out a
connection that sends nothing, or a head sent a byte at a time: its only timer is
keep-alive, armed after a response and disarmed by the first byte of the next request
(uvicorn/protocols/http/httptools_impl.py: ``data_received``, ``on_response_complete``).
h11 caps the head (``h11_max_incomplete_event_size``) but times out nothing either.

``GuardedHttpToolsProtocol`` is uvicorn's httptools protocol plus both: a request head
over ``max_header_bytes`` is answered 431 and the connection closed, having held at most
that plus one read (64-256 KiB); a connection whose head is not complete within
``header_timeout`` of opening, or of its last answer, is closed (408 if it had begun).
The limits come from the environment (``PLANHAT_SYNC_WEB_*``), read once per process: a
``--workers`` child is spawned and imports this module afresh.
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from worker.intake.limits import ReceiverLimits

PROTOCOL = "worker.intake.serving:GuardedHttpToolsProtocol"  # for uvicorn's ``http=``


@cache
def _limits() -> ReceiverLimits:
    from worker.runtime.settings import WebSettings

    return WebSettings().limits()


class _HeadTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = _limits()
        self._max_head = limits.max_header_bytes
        self._head_timeout = limits.header_timeout
        self._in_head = True  # waiting for a request head, or reading one
        self._head_begun = False  # its first byte has arrived
        self._head_bytes = 0  # bytes of it seen (a lower bound: see data_received)
        self._began_in_chunk = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._began_in_chunk = False
        super().data_received(data)
        # A chunk in which a head began may also end the previous request: it is not
        # counted (the exact size is checked in on_headers_complete), so a head is
        # refused once it has sent at most max_header_bytes plus one read.
        if self._in_head and self._head_begun and not self._began_in_chunk:
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head and not self._refused:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_begun, self._began_in_chunk = True, True, True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._max_head:
            # Raising stops httptools at once; uvicorn then logs "Invalid HTTP request
            # received." and calls send_400_response, which answers 431 instead.
            self._refused = True
            raise _HeadTooLarge
        self._in_head = self._head_begun = False
        self._stop_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        idle = not self.pipeline and (self.cycle is None or self.cycle.response_complete)
        if idle and not self.transport.is_closing():  # no request runs: a head is awaited
            self._in_head = True
            self._await_head()

    def send_400_response(self, msg: str) -> None:
        if self._refused:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        self._refused = True
        self._answer(431, f"the request head is over {self._max_head} bytes")

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_begun:
            self._answer(408, f"the request head did not arrive within {self._head_timeout:g} s")
        else:
            self.transport.close()  # idle: nothing to answer

    def _answer(self, status: int, error: str) -> None:
        """A whole answer, written here (no app is running for this request), then close."""
        self._stop_head_timer()
        if self.transport.is_closing():
            return
        body = json.dumps({"error": error}).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()
