"""A local fake of an outside system that receives webhooks: it records every delivery
(headers and body) and answers what it is told to, per request in turn.

    with OutboundReceiver() as receiver:          # 200 to everything
        receiver.answer(500, 200)                  # each new delivery id: 500 first, then 200
        receiver.answer(400, body={"error": "x"})  # every delivery: 400
        receiver.deliveries                        # what arrived, in order

Served by uvicorn on a real socket (``BackgroundServer``): what is tested is the HTTP the
worker really sends. Not a patch of anything of ours.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.planhat.sandbox.server import BackgroundServer


@dataclass(frozen=True, slots=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


class OutboundReceiver(BackgroundServer):
    """``POST`` anything under ``/``: recorded, answered by the script (see module doc)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._statuses: tuple[int, ...] = (200,)
        self._body: Any = {"ok": True}
        self._tries: Counter[str] = Counter()  # tries per delivery id (webhook-id)
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])
        super().__init__(app)

    def answer(self, *statuses: int, body: Any = None) -> None:
        """The n-th try of each delivery id is answered ``statuses[n]`` (the last one for
        every later try), with ``body`` (JSON) when given."""
        with self._lock:
            self._statuses = statuses or (200,)
            self._body = {"ok": True} if body is None else body

    def ok(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if 200 <= d.status < 300]

    def all(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        headers = {key.lower(): value for key, value in request.headers.items()}
        key = headers.get("webhook-id") or body.decode(errors="replace")
        with self._lock:
            tries = self._tries[key]
            self._tries[key] += 1
            status = self._statuses[min(tries, len(self._statuses) - 1)]
            self.deliveries.append(Delivery(request.url.path, headers, body, status))
            answer = self._body
        return JSONResponse(answer, status_code=status)
