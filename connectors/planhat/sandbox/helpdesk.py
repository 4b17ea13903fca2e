"""What the helpdesk stand-ins (Zendesk's, Intercom's) share besides their webhook
(``delivery.SourceWebhook``): the API calls counted per route, the ``/_sandbox`` routes
that read and zero those counts and pause the webhook, and serving the stand-in as an
app whose webhook deliverer stops with it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.planhat.sandbox.delivery import SourceWebhook
from connectors.planhat.sandbox.limiter import FixedWindow


@dataclass(slots=True)
class ApiStats:
    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    api_writes: int = 0  # ticket updates through the API that changed the ticket
    unchanged_writes: int = 0  # ticket updates through the API that changed nothing (echoes)
    ui_edits: int = 0

    def count(self, route: str) -> None:
        self.requests += 1
        self.by_route[route] += 1

    def as_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "by_route": dict(self.by_route),
                "rate_limited": self.rate_limited, "api_writes": self.api_writes,
                "unchanged_writes": self.unchanged_writes, "ui_edits": self.ui_edits}  # fmt: skip


class HelpdeskSandbox:
    """A stand-in's state that the ``/_sandbox`` routes below read and reset; a source's
    stand-in sets these in its ``__init__`` and adds its own API."""

    stats: ApiStats
    webhook: SourceWebhook

    def ticket_count(self) -> int:
        raise NotImplementedError

    def limiters(self) -> Sequence[FixedWindow]:
        """The budgets a reset empties."""
        return ()

    def reset_more(self) -> None:
        """What else a reset clears (a source's faults)."""

    async def control_webhook(self, request: Request) -> Response:
        self.webhook.paused = bool(json.loads(await request.body()).get("paused"))
        return JSONResponse({"paused": self.webhook.paused})

    async def stats_view(self, request: Request) -> Response:
        counts = {"tickets": self.ticket_count(), "webhook": self.webhook.counts()}
        return JSONResponse({**self.stats.as_json(), **counts})

    async def reset(self, request: Request) -> Response:
        self.stats = type(self.stats)()
        self.reset_more()
        self.webhook.reset()
        for limiter in self.limiters():
            limiter.reset()
        return JSONResponse({"reset": True})

    def sandbox_routes(self) -> list[Route]:
        return [
            Route("/_sandbox/stats", self.stats_view, methods=["GET"]),
            Route("/_sandbox/reset", self.reset, methods=["POST"]),
            Route("/_sandbox/webhook", self.control_webhook, methods=["POST"]),
        ]


def serve(sandbox: HelpdeskSandbox, routes: list[Route]) -> Starlette:
    """The stand-in as an app (``app.state.sandbox``); its webhook stops with it."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        sandbox.webhook.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sandbox
    return app
