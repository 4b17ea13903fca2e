"""The Planhat sandbox as an ASGI app: the API of every model in the registry.

Serve it with ``planhat-sync sandbox`` (uvicorn) or call it in-process through an httpx
ASGI transport. Besides the API it answers ``GET /_sandbox/stats``, ``POST /_sandbox/reset``
and ``POST /_sandbox/faults``, which need no token and count nothing; Planhat Automations
and edits made as in Planhat's UI are in ``sandbox/automations.py``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from connectors.planhat.models import MODELS, ModelSpec, Operation
from connectors.planhat.sandbox.automations import (
    AutomatedStore,
    Automations,
    automations_view,
    ui_edit,
)
from connectors.planhat.sandbox.limiter import Decision, TokenBucket
from connectors.planhat.sandbox.store import Store
from connectors.planhat.sandbox.tenant import SandboxError, Tenant

DEFAULT_LIST_LIMIT = 100  # Planhat's documented default page size


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxConfig:
    tokens: frozenset[str] = frozenset()  # empty: any non-empty bearer token is accepted
    rate_per_minute: float = 200.0
    burst: int = 50
    fail_rate: float = 0.0  # fraction of API requests answered 500
    latency_ms: int = 0
    db_path: str | None = None  # SQLite file to keep the data in; None: memory only
    seed: int | None = None  # for reproducible fault injection
    # Planhat Automations (sandbox/automations.py): model → URL a hint is POSTed to on
    # every create, update and delete of that model, with "Authorization: Bearer <secret>".
    automations: Mapping[str, str] = field(default_factory=dict)
    automation_secret: str | None = None
    automation_drop_rate: float = 0.0  # fraction of hints lost on purpose


@dataclass(slots=True)
class Stats:
    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    injected_failures: int = 0


Handler = Callable[[Request, ModelSpec], Awaitable[Response]]


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        if not 0.0 <= config.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        self.config = config
        self.automations = Automations(
            config.automations,
            secret=config.automation_secret,
            drop_rate=config.automation_drop_rate,
            seed=config.seed,
        )
        self.store: Store = AutomatedStore(config.db_path, self.automations)
        self.tenant = Tenant(self.store)
        self.limiter = TokenBucket(config.rate_per_minute, config.burst)
        self.stats = Stats()
        self._random = random.Random(config.seed)
        # Faults a test may change while the sandbox runs (POST /_sandbox/faults).
        self.fail_rate = config.fail_rate
        self.latency_ms = config.latency_ms
        self.storm_until = 0.0  # monotonic time until which every call is answered 429

    # --- the gate every API request passes --------------------------------------------

    def _token(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":  # Planhat also takes Basic base64(token + ":")
            try:
                value = base64.b64decode(value, validate=True).decode().rstrip(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
        elif scheme.lower() != "bearer":
            return None
        if not value or (self.config.tokens and value not in self.config.tokens):
            return None
        return value

    async def serve(self, request: Request, route: str, handler: Handler) -> Response:
        model = request.path_params["model"]
        self.stats.requests += 1
        self.stats.by_route[f"{request.method} {route.format(model=model)}"] += 1
        token = self._token(request)
        if token is None:
            return PlainTextResponse("Unauthorized", status_code=401)
        decision = self.limiter.take(token)
        limit_headers = {
            "X-Rate-Limit-Limit": str(int(self.limiter.rate_per_minute)),
            "X-Rate-Limit-Remaining": str(decision.remaining),
        }
        if time.monotonic() < self.storm_until:  # an injected 429 storm
            decision = Decision(False, 0, 1)
        if not decision.allowed:
            self.stats.rate_limited += 1
            return PlainTextResponse(
                "Too many requests",
                status_code=429,
                headers={**limit_headers, "Retry-After": str(decision.retry_after)},
            )
        try:
            # Read the whole request before any delay: like Planhat, a write that arrived
            # is applied even if the caller is gone by the time it is answered.
            await request.body()
        except ClientDisconnect:
            return PlainTextResponse("client went away", status_code=499)
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        spec = MODELS.get(model)
        if spec is None:
            return PlainTextResponse(f"Cannot {request.method} {request.url.path}", 404)
        fail = self._random.random() < self.fail_rate
        # Half of the injected 500s come after the write is applied, as when a gateway
        # times out on a request Planhat finished: only keyed writes survive a retry.
        fail_after = fail and self._random.random() < 0.5
        if fail and not fail_after:
            return self._injected_failure()
        try:
            response = await handler(request, spec)
        except SandboxError as error:
            response = PlainTextResponse(error.message, status_code=error.status)
        finally:
            self.store.commit()
        if fail_after:
            return self._injected_failure()
        response.headers.update(limit_headers)
        return response

    def _injected_failure(self) -> Response:
        self.stats.injected_failures += 1
        return PlainTextResponse("Internal Server Error (injected by the sandbox)", 500)

    # --- handlers ---------------------------------------------------------------------

    @staticmethod
    def _allow(request: Request, spec: ModelSpec, operation: Operation) -> None:
        if not spec.supports(operation):
            # Planhat has no such route for this model (Express's wording).
            raise SandboxError(404, f"Cannot {request.method} {request.url.path}")

    @staticmethod
    async def _body(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw)
        except ValueError:
            raise SandboxError(400, "request body is not valid JSON") from None

    async def collection(self, request: Request, spec: ModelSpec) -> Response:
        if request.method == "GET":
            self._allow(request, spec, Operation.LIST)
            return JSONResponse(self._list(request, spec))
        if request.method == "POST":
            self._allow(request, spec, Operation.CREATE)
            return JSONResponse(self.tenant.create(spec, await self._body(request)))
        self._allow(request, spec, Operation.UPSERT)
        status, answer = self.tenant.bulk_upsert(spec, await self._body(request))
        return JSONResponse(answer, status_code=status)

    async def item(self, request: Request, spec: ModelSpec) -> Response:
        ref = request.path_params["ref"]
        if request.method == "GET":
            self._allow(request, spec, Operation.GET)
            return JSONResponse(self.tenant.get(spec, ref))
        if request.method == "PUT":
            self._allow(request, spec, Operation.UPDATE)
            return JSONResponse(self.tenant.update(spec, ref, await self._body(request)))
        self._allow(request, spec, Operation.DELETE)
        return JSONResponse(self.tenant.delete(spec, ref))

    def _list(self, request: Request, spec: ModelSpec) -> list[dict[str, Any]]:
        query = request.query_params
        try:
            limit = int(query.get("limit", DEFAULT_LIST_LIMIT))
            offset = int(query.get("offset", 0))
        except ValueError:
            raise SandboxError(400, "limit and offset must be integers") from None
        if limit < 0 or offset < 0:
            raise SandboxError(400, "limit and offset must not be negative")
        return self.tenant.list(
            spec,
            limit=limit,
            offset=offset,
            sort=query.get("sort") or None,
            select=_csv(query.get("select")),
            company_refs=_csv(query.get("companyId")),
        )

    async def stats_view(self, request: Request) -> Response:
        return JSONResponse(
            {
                "requests": self.stats.requests,
                "by_route": dict(self.stats.by_route),
                "rate_limited": self.stats.rate_limited,
                "injected_failures": self.stats.injected_failures,
                "records": {name: self.store.count(name) for name in MODELS},
                "automations": self.automations.counts(),
            }
        )

    async def faults_view(self, request: Request) -> Response:
        """Change faults while running: ``{"fail_rate": 0.2, "latency_ms": 100,
        "rate_limit_storm_s": 5}`` (a storm answers every API call 429 for that long)."""
        try:
            faults = json.loads(await request.body())
            fail_rate = float(faults.get("fail_rate", self.fail_rate))
            latency_ms = int(faults.get("latency_ms", self.latency_ms))
            storm = float(faults.get("rate_limit_storm_s", 0))
        except (ValueError, TypeError, AttributeError):
            return PlainTextResponse("expected a JSON object of numbers", status_code=400)
        if not 0.0 <= fail_rate <= 1.0 or latency_ms < 0 or storm < 0:
            return PlainTextResponse("fail_rate must be in 0..1, the others >= 0", 400)
        self.fail_rate, self.latency_ms = fail_rate, latency_ms
        if storm:
            self.storm_until = time.monotonic() + storm
        return JSONResponse({"fail_rate": fail_rate, "latency_ms": latency_ms, "storm_s": storm})

    async def reset_view(self, request: Request) -> Response:
        self.store.clear()
        self.stats = Stats()
        self.automations.reset()
        self.limiter.reset()
        self.fail_rate, self.latency_ms = self.config.fail_rate, self.config.latency_ms
        self.storm_until = 0.0
        return JSONResponse({"ok": 1})


def _csv(value: str | None) -> Sequence[str] | None:
    return [part for part in value.split(",") if part] if value else None


def _closing(sandbox: Sandbox) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        sandbox.automations.close()
        sandbox.store.close()

    return lifespan


def create_app(config: SandboxConfig | None = None) -> Starlette:
    sandbox = Sandbox(config or SandboxConfig())

    def api(route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await sandbox.serve(request, route, handler)

        return endpoint

    app = Starlette(
        routes=[
            Route("/_sandbox/stats", sandbox.stats_view, methods=["GET"]),
            Route("/_sandbox/reset", sandbox.reset_view, methods=["POST"]),
            Route("/_sandbox/faults", sandbox.faults_view, methods=["POST"]),
            Route(
                "/_sandbox/automations",
                partial(automations_view, sandbox),
                methods=["GET", "POST"],
            ),
            Route(
                "/_sandbox/ui/{model}/{ref:path}",
                partial(ui_edit, sandbox),
                methods=["POST"],
            ),
            Route("/{model}", api("/{model}", sandbox.collection), methods=["GET", "POST", "PUT"]),
            Route(
                "/{model}/{ref:path}",
                api("/{model}/:id", sandbox.item),
                methods=["GET", "PUT", "DELETE"],
            ),
        ],
        lifespan=_closing(sandbox),
    )
    app.state.sandbox = sandbox
    return app
