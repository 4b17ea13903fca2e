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
import hashlib
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
from connectors.planhat.sandbox.errors import SandboxError
from connectors.planhat.sandbox.limiter import Decision, FixedWindow, TokenBucket
from connectors.planhat.sandbox.store import Store
from connectors.planhat.sandbox.tenant import COMPANIES, Tenant

DEFAULT_LIST_LIMIT = 100  # Planhat's documented default page size


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxConfig:
    tokens: frozenset[str] = frozenset()  # empty: any non-empty bearer token is accepted
    rate_per_minute: float = 200.0
    burst: int = 50
    # With a window: ``rate_per_minute`` calls per window of this many seconds, reset
    # when it ends (Planhat's older docs: 60-120 s), instead of the token bucket.
    rate_window_s: float | None = None
    per_second: int | None = None  # Planhat's hard limit is 150 (docs.planhat.com); off
    # Whether a 429 says Retry-After: Planhat documents no Retry-After, only
    # X-Rate-Limit-Limit / -Remaining (planhat/docs source/includes/_intro.md).
    retry_after: bool = True
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
    # Records bulk upserts created or changed, and those they wrote unchanged (an echo, or
    # a write that was not needed), per model.
    record_writes: Counter[str] = field(default_factory=Counter)
    unchanged_writes: Counter[str] = field(default_factory=Counter)


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
        self.limiter: TokenBucket | FixedWindow = (
            TokenBucket(config.rate_per_minute, config.burst)
            if config.rate_window_s is None
            else FixedWindow(max(1, int(config.rate_per_minute)), config.rate_window_s)
        )
        self.per_second = None if config.per_second is None else FixedWindow(config.per_second, 1)
        self.retry_after = config.retry_after
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
        """A model's route: ``route`` is its stats label, ``handler`` its operation."""
        model = request.path_params["model"]
        spec = MODELS.get(model)

        async def call(request: Request) -> Response:
            if spec is None:
                return PlainTextResponse(f"Cannot {request.method} {request.url.path}", 404)
            return await handler(request, spec)

        return await self.gate(request, route.format(model=model), call)

    async def gate(
        self, request: Request, route: str, call: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Every API request: count it, check its token and rate, inject faults, then
        ``call``; the writes of one request are committed together."""
        self.stats.requests += 1
        self.stats.by_route[f"{request.method} {route}"] += 1
        token = self._token(request)
        if token is None:
            return PlainTextResponse("Unauthorized", status_code=401)
        decision = self._rate_decision(token)
        limit_headers = {
            "X-Rate-Limit-Limit": str(int(self.config.rate_per_minute)),
            "X-Rate-Limit-Remaining": str(decision.remaining),
        }
        if time.monotonic() < self.storm_until:  # an injected 429 storm
            decision = Decision(False, 0, 1)
        if not decision.allowed:
            self.stats.rate_limited += 1
            # 429 "Too many requests" with X-Rate-Limit-* (planhat/docs _intro.md);
            # Retry-After only when configured (Planhat does not document one).
            when = {"Retry-After": str(decision.retry_after)} if self.retry_after else {}
            return PlainTextResponse(
                "Too many requests", status_code=429, headers={**limit_headers, **when}
            )
        try:
            # Read the whole request before any delay: like Planhat, a write that arrived
            # is applied even if the caller is gone by the time it is answered.
            await request.body()
        except ClientDisconnect:
            # Assumed: nginx's 499 "client closed request"; nobody reads it, the caller is
            # gone. No source says what Planhat does with a request cut short.
            return PlainTextResponse("client went away", status_code=499)
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        fail = self._random.random() < self.fail_rate
        # Half of the injected 500s come after the write is applied, as when a gateway
        # times out on a request Planhat finished: only keyed writes survive a retry.
        fail_after = fail and self._random.random() < 0.5
        if fail and not fail_after:
            return self._injected_failure()
        try:
            response = await call(request)
        except SandboxError as error:
            response = PlainTextResponse(error.message, status_code=error.status)
        finally:
            self.store.commit()
        if fail_after:
            return self._injected_failure()
        response.headers.update(limit_headers)
        return response

    def _rate_decision(self, token: str) -> Decision:
        """The hard limit per second first (a call it refuses costs no quota), then the
        quota."""
        if self.per_second is not None:
            burst = self.per_second.take(token)
            if not burst.allowed:
                return Decision(False, 0, burst.retry_after)
        return self.limiter.take(token)

    def _injected_failure(self) -> Response:
        self.stats.injected_failures += 1
        return PlainTextResponse("Internal Server Error (injected by the sandbox)", 500)

    # --- handlers ---------------------------------------------------------------------

    def _allow(self, request: Request, spec: ModelSpec, operation: Operation) -> None:
        if not spec.supports(operation):
            # Planhat has no such route for this model. Assumed: a 404 in Express's
            # wording (Planhat's API looks like an Express app; no source says so).
            raise SandboxError(404, f"Cannot {request.method} {request.url.path}")
        if str(operation) in self.tenant.denied.get(spec.name, ()):
            # 403 "you don't have the right permissions to execute the operation"
            # (planhat.com/developers/api/http-response-codes); the body text is assumed.
            raise SandboxError(403, f"Forbidden: no permission to {operation} {spec.name}")

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
        self.stats.record_writes[spec.name] += answer["created"] + answer["updated"]
        self.stats.unchanged_writes[spec.name] += answer["nonupdates"]
        return JSONResponse(answer, status_code=status)

    async def item(self, request: Request, spec: ModelSpec) -> Response:
        ref = request.path_params["ref"]
        if request.method == "GET":
            self._allow(request, spec, Operation.GET)
            return JSONResponse(self.tenant.read(spec, ref))
        if request.method == "PUT":
            self._allow(request, spec, Operation.UPDATE)
            return JSONResponse(self.tenant.update(spec, ref, await self._body(request)))
        self._allow(request, spec, Operation.DELETE)
        return JSONResponse(self.tenant.delete(spec, ref))

    async def lean_companies(self, request: Request) -> Response:
        """``GET /leancompanies``: Planhat's "Get lean list" of companies
        (https://docs.planhat.com, under Company). Assumed: each entry holds only ``_id``,
        ``name``, ``externalId`` and ``sourceId``, and pages like ``/companies``."""
        limit, offset = _paging(request)
        page = self.tenant.list(
            COMPANIES,
            limit=min(limit, COMPANIES.page_size),
            offset=offset,
            sort=None,
            select=None,
            company_refs=None,
        )
        lean = ("_id", "name", "externalId", "sourceId")
        return JSONResponse([{k: c[k] for k in lean if k in c} for c in page])

    async def my_profile(self, request: Request) -> Response:
        """``GET /myprofile``: who the token is (the reference lists it as the way to check
        a token). Assumed: the token's Service Account as a user record; here one made up
        from the token, with the same ``_id`` for the same token."""
        token = self._token(request) or ""
        user_id = hashlib.sha256(token.encode()).hexdigest()[:24]
        return JSONResponse(
            {
                "_id": user_id,
                "firstName": "Sandbox",
                "lastName": "Service Account",
                "nickName": "sandbox",
                "email": f"service-account-{user_id[:6]}@sandbox.invalid",
            }
        )

    def _list(self, request: Request, spec: ModelSpec) -> list[dict[str, Any]]:
        query = request.query_params
        limit, offset = _paging(request)
        return self.tenant.list(
            spec,
            # Planhat returns at most 2,000 records a page (5,000 companies): robocorp-planhat
            # src/planhat/client.py, botpress integrations/planhat. That a larger limit is
            # cut down rather than refused is assumed.
            limit=min(limit, spec.page_size),
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
                "record_writes": dict(self.stats.record_writes),
                "unchanged_writes": dict(self.stats.unchanged_writes),
                "records": {name: self.tenant.count(spec) for name, spec in MODELS.items()},
                "automations": self.automations.counts(),
            }
        )

    async def faults_view(self, request: Request) -> Response:
        """Change faults while running: ``{"fail_rate": 0.2, "latency_ms": 100,
        "rate_limit_storm_s": 5}`` (a storm answers every API call 429 for that long);
        ``{"retry_after": false}`` (429s without Retry-After, as Planhat may answer);
        ``{"deny": {"licenses": ["create"]}}`` (403s, and bulk ``permissionErrors``, for
        those operations); ``{"inserts_keys": "id"}`` (bulk ``insertsKeys`` entries carry
        only ``_id``; ``"sent"``: the keys sent too)."""
        try:
            faults = json.loads(await request.body())
            fail_rate = float(faults.get("fail_rate", self.fail_rate))
            latency_ms = int(faults.get("latency_ms", self.latency_ms))
            storm = float(faults.get("rate_limit_storm_s", 0))
            deny = faults.get("deny")
            inserts_keys = faults.get("inserts_keys")
            retry_after = faults.get("retry_after", self.retry_after)
            denied = None if deny is None else _denied(deny)
        except (ValueError, TypeError, AttributeError):
            return PlainTextResponse("expected a JSON object of numbers", status_code=400)
        if not 0.0 <= fail_rate <= 1.0 or latency_ms < 0 or storm < 0:
            return PlainTextResponse("fail_rate must be in 0..1, the others >= 0", 400)
        if inserts_keys not in (None, "id", "sent"):
            return PlainTextResponse('inserts_keys is "id" or "sent"', 400)
        if not isinstance(retry_after, bool):
            return PlainTextResponse("retry_after is true or false", 400)
        self.retry_after = retry_after
        self.fail_rate, self.latency_ms = fail_rate, latency_ms
        if storm:
            self.storm_until = time.monotonic() + storm
        if denied is not None:
            self.tenant.denied = denied
        if inserts_keys is not None:
            self.tenant.inserts_keys_id_only = inserts_keys == "id"
        return JSONResponse(
            {
                "fail_rate": fail_rate,
                "latency_ms": latency_ms,
                "storm_s": storm,
                "deny": {model: sorted(ops) for model, ops in self.tenant.denied.items()},
                "inserts_keys": "id" if self.tenant.inserts_keys_id_only else "sent",
                "retry_after": self.retry_after,
            }
        )

    async def reset_view(self, request: Request) -> Response:
        self.store.clear()
        self.stats = Stats()
        self.automations.reset()
        self.limiter.reset()
        if self.per_second is not None:
            self.per_second.reset()
        self.retry_after = self.config.retry_after
        self.fail_rate, self.latency_ms = self.config.fail_rate, self.config.latency_ms
        self.storm_until = 0.0
        self.tenant.denied = {}
        self.tenant.inserts_keys_id_only = False
        return JSONResponse({"ok": 1})


def _paging(request: Request) -> tuple[int, int]:
    query = request.query_params
    try:
        limit = int(query.get("limit", DEFAULT_LIST_LIMIT))
        offset = int(query.get("offset", 0))
    except ValueError:
        raise SandboxError(400, "limit and offset must be integers") from None
    if limit < 0 or offset < 0:
        raise SandboxError(400, "limit and offset must not be negative")
    return limit, offset


def _denied(deny: Any) -> dict[str, frozenset[str]]:
    """``{"licenses": ["create", "update"]}``, checked: models and operations known."""
    if not isinstance(deny, dict):
        raise TypeError("deny is an object")
    allowed = {"create", "update", "delete"}
    denied: dict[str, frozenset[str]] = {}
    for model, operations in deny.items():
        if model not in MODELS or not isinstance(operations, list):
            raise ValueError(f"deny: {model!r}")
        if not set(operations) <= allowed:
            raise ValueError(f"deny: {operations!r}")
        denied[model] = frozenset(operations)
    return denied


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

    def plain(
        route: str, call: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await sandbox.gate(request, route, call)

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
            Route("/myprofile", plain("/myprofile", sandbox.my_profile), methods=["GET"]),
            Route(
                "/leancompanies", plain("/leancompanies", sandbox.lean_companies), methods=["GET"]
            ),
            # Planhat has no PATCH ("PUT is a partial update", planhat-api.md). A method not
            # listed is answered 405 by Starlette: assumed (an Express app would say 404).
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
