"""The Intercom stand-in as an ASGI app: the few REST API paths planhat-sync uses.

Serve it with ``planhat-sync intercom-sandbox`` or call it in-process (httpx ASGI
transport). Like the other stand-ins it answers ``GET /_sandbox/stats`` and
``POST /_sandbox/reset`` without credentials; ``POST /_sandbox/ui/tickets/{id}`` is an
admin's edit in Intercom's inbox, ``POST /_sandbox/webhook`` pauses or resumes the webhook
(a paused webhook's notifications are lost: a missed webhook), ``POST /_sandbox/faults``
answers the next API requests 429 (``rate_limited``: how many, ``reset_in_s``) or the
``fail_search``-th search request from now 500, once; ``POST /_sandbox/admins``
(``email``, ``name``) adds a teammate, as Intercom's app does (the API adds none). Its
stats count API requests by route, in all and per app (``by_app``: the app's package code
→ route → count).

Intercom's behaviours kept (developers.intercom.com, REST API 2.14): Bearer access tokens
(else 401 ``unauthorized``); an ``error.list`` body on every refusal; requests counted per
app in 10-second windows, each authenticated answer carrying ``X-RateLimit-Limit``,
``-Remaining`` and ``-Reset`` (a Unix time) and a 429 ``rate_limit_exceeded`` past the
limit (rest-api/errors/rate-limiting); ``PUT /tickets/{id}`` takes ``ticket_state_id``
(one of ``GET /ticket_states``, not archived), ``ticket_attributes``, ``assignee_id`` and
``admin_id`` (the admin the change is attributed to); parts made through the API carry the
app's ``app_package_code``; a notification fires for every change, the API's included;
``GET /admins`` answers ``{"type": "admin.list", "admins": [...]}`` and ``GET /admins/{id}``
one admin (2.14 admin model: ``id``, ``name``, ``email``, ``job_title``,
``has_inbox_seat``, ``team_ids``, …), 404 ``not_found`` for an id that is none.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.intercom.sandbox.hooks import Webhook, notification
from connectors.intercom.sandbox.search import BadQuery, search
from connectors.intercom.sandbox.store import IntercomStore, Invalid
from connectors.planhat.sandbox.helpdesk import ApiStats, HelpdeskSandbox, serve
from connectors.planhat.sandbox.limiter import FixedWindow

Handler = Callable[[Request, str], Any]
WINDOW_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class IntercomConfig:
    app_id: str = "sandbox"
    tokens: frozenset[str] = frozenset()  # accepted access tokens; empty: any
    rate_per_window: int = 1666  # 10,000 a minute, counted in 10-second windows
    app_package_code: str = "planhat-sync"  # the app of any token not in ``app_codes``
    app_codes: Mapping[str, str] = field(default_factory=dict)  # token → its app's code
    webhook_url: str | None = None
    client_secret: str = "intercom-sandbox-client-secret"  # noqa: S105
    page_size: int | None = None  # search pages no larger than this (tests of paging)


@dataclass(slots=True)
class Stats(ApiStats):
    by_app: dict[str, Counter[str]] = field(default_factory=dict)  # app's code → by_route

    def as_json(self) -> dict[str, Any]:
        # ApiStats named: zero-argument super() fails in a slots dataclass (a new class)
        apps = {app: dict(routes) for app, routes in self.by_app.items()}
        return {**ApiStats.as_json(self), "by_app": apps}


@dataclass(slots=True)
class Faults:
    rate_limited: int = 0  # the next API requests answered 429 …
    reset_in_s: int = 1  # … with X-RateLimit-Reset this many seconds ahead
    fail_search: int = 0  # the n-th search request from now answered 500, once


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    body = {"type": "error.list", "request_id": str(uuid.uuid4()),
            "errors": [{"code": code, "message": message}]}  # fmt: skip
    return JSONResponse(body, status, headers=headers)


class IntercomSandbox(HelpdeskSandbox):
    stats: Stats

    def __init__(self, config: IntercomConfig, store: IntercomStore | None = None) -> None:
        self.config = config
        self.store = store or IntercomStore(config.app_id)
        self.webhook = Webhook(config.webhook_url, config.client_secret)
        self.stats = Stats()
        self.faults = Faults()
        self.limit = FixedWindow(config.rate_per_window, WINDOW_S)

    def _token(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return token if not self.config.tokens or token in self.config.tokens else None

    def api(self, route: str, handler: Handler) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            self.stats.count(route)
            token = self._token(request)
            if token is None:
                return _error(401, "unauthorized", "Access Token Invalid")
            app = self.config.app_codes.get(token, self.config.app_package_code)
            self.stats.by_app.setdefault(app, Counter())[route] += 1
            decision = self.limit.take(token)
            reset = int(time.time()) + max(1, decision.retry_after)
            if self.faults.rate_limited > 0:
                self.faults.rate_limited -= 1
                decision = replace(decision, allowed=False, remaining=0)
                reset = int(time.time()) + self.faults.reset_in_s
            limits = {"X-RateLimit-Limit": str(self.config.rate_per_window),
                      "X-RateLimit-Remaining": str(decision.remaining),
                      "X-RateLimit-Reset": str(reset)}  # fmt: skip
            if not decision.allowed:
                self.stats.rate_limited += 1
                message = f"Exceeded rate limit of {self.config.rate_per_window} in 10_seconds"
                return _error(429, "rate_limit_exceeded", message, **limits)
            if route == "POST /tickets/search" and self.faults.fail_search > 0:
                self.faults.fail_search -= 1
                if self.faults.fail_search == 0:
                    return _error(500, "server_error", "Server error", **limits)
            try:
                answer: Response = await handler(request, token)
            except (Invalid, BadQuery) as error:
                answer = _error(400 if isinstance(error, BadQuery) else 422,
                                "parameter_invalid", str(error))  # fmt: skip
            except (KeyError, ValueError):
                answer = _error(404, "not_found", "Resource Not Found")
            answer.headers.update(limits)
            return answer

        return endpoint

    async def _body(self, request: Request) -> dict[str, Any]:
        document = json.loads(await request.body() or b"{}")
        if not isinstance(document, dict):
            raise Invalid("the body must be a JSON object")
        return document

    def _api_author(self, given: Mapping[str, Any], token: str) -> dict[str, Any]:
        """Who an API write is by: the ``admin_id`` given, else the app's bot; either way
        with the ``app_package_code`` of the app the token belongs to."""
        admin = self.store.admins.get(str(given.get("admin_id") or ""))
        if given.get("admin_id") and admin is None:
            raise Invalid("admin_id is not an admin of this workspace")
        who = admin or {"type": "bot", "id": "0", "name": "Planhat sync", "email": None}
        code = self.config.app_codes.get(token, self.config.app_package_code)
        return {**who, "app_package_code": code}

    async def create_contact(self, request: Request, token: str) -> Response:
        return JSONResponse(self.store.create_contact(await self._body(request)))

    async def show_contact(self, request: Request, token: str) -> Response:
        return JSONResponse(self.store.contact(request.path_params["id"]))

    async def contact_companies(self, request: Request, token: str) -> Response:
        companies = self.store.companies_of(request.path_params["id"])
        pages = {"type": "pages", "page": 1, "per_page": 50, "total_pages": 1}
        return JSONResponse({"type": "list", "data": companies, "pages": pages,
                             "total_count": len(companies)})  # fmt: skip

    async def attach_company(self, request: Request, token: str) -> Response:
        given = await self._body(request)
        company = self.store.attach(request.path_params["id"], str(given.get("id")))
        return JSONResponse(company)

    async def upsert_company(self, request: Request, token: str) -> Response:
        return JSONResponse(self.store.upsert_company(await self._body(request)))

    async def list_admins(self, request: Request, token: str) -> Response:
        # GET /admins (2.14 listAdmins): ``{"type": "admin.list", "admins": [admin, …]}``,
        # the whole workspace in one answer (no paging)
        with self.store.lock:
            admins = [dict(admin) for admin in self.store.admins.values()]
        return JSONResponse({"type": "admin.list", "admins": admins})

    async def show_admin(self, request: Request, token: str) -> Response:
        # GET /admins/{id} (2.14 retrieveAdmin): the admin; 404 not_found when none
        with self.store.lock:
            return JSONResponse(self.store.admins[request.path_params["id"]])

    async def add_admin(self, request: Request) -> Response:
        """A teammate added in Intercom's app (the API makes none)."""
        given = json.loads(await request.body() or b"{}")
        admin = self.store.add_admin(str(given["email"]), str(given.get("name") or "Agent"))
        return JSONResponse(admin)

    async def ticket_states(self, request: Request, token: str) -> Response:
        return JSONResponse({"type": "list", "data": self.store.states})

    async def create_ticket(self, request: Request, token: str) -> Response:
        given = await self._body(request)
        ticket = self.store.create_ticket(given, author=self._api_author(given, token))
        self._notify(ticket, ["ticket.created"])
        return JSONResponse(ticket)

    async def show_ticket(self, request: Request, token: str) -> Response:
        with self.store.lock:
            return JSONResponse(self.store.tickets[request.path_params["id"]])

    async def update_ticket(self, request: Request, token: str) -> Response:
        given = dict(await self._body(request))
        if "assignee_id" in given:
            given["admin_assignee_id"] = given.pop("assignee_id")
        ticket_id = request.path_params["id"]
        if ticket_id not in self.store.tickets:
            raise KeyError(ticket_id)
        author = self._api_author(given, token)
        ticket, topics = self.store.update_ticket(ticket_id, given, author=author)
        if topics:
            self.stats.api_writes += 1
        else:
            self.stats.unchanged_writes += 1
        self._notify(ticket, topics)
        return JSONResponse(ticket)

    async def search_tickets(self, request: Request, token: str) -> Response:
        return JSONResponse(
            search(self.store.ordered(), await self._body(request), self.config.page_size)
        )

    def _notify(self, ticket: dict[str, Any], topics: list[str]) -> None:
        at = int(ticket["updated_at"])
        self.webhook.fire([notification(self.config.app_id, t, ticket, at) for t in topics])

    async def ui_edit(self, request: Request) -> Response:
        """An admin's edit in the inbox: no API call counted, no app_package_code; the
        webhook fires."""
        given = json.loads(await request.body())
        admin = self.store.admins[str(given.pop("admin_id", "991267001"))]
        try:
            ticket, topics = self.store.update_ticket(request.path_params["id"], given,
                                                      author=admin)  # fmt: skip
        except KeyError:
            return _error(404, "not_found", "Resource Not Found")
        except Invalid as error:
            return _error(422, "parameter_invalid", str(error))
        self.stats.ui_edits += 1
        self._notify(ticket, topics)
        return JSONResponse(ticket)

    async def set_faults(self, request: Request) -> Response:
        given = json.loads(await request.body() or b"{}")
        for name in ("rate_limited", "reset_in_s", "fail_search"):
            if name in given:
                setattr(self.faults, name, int(given[name]))
        return JSONResponse({"rate_limited": self.faults.rate_limited,
                             "fail_search": self.faults.fail_search})  # fmt: skip

    def ticket_count(self) -> int:
        return len(self.store.tickets)

    def limiters(self) -> tuple[FixedWindow, ...]:
        return (self.limit,)

    def reset_more(self) -> None:
        self.faults = Faults()

    def routes(self) -> list[Route]:
        api = [
            ("POST", "/contacts", self.create_contact),
            ("GET", "/contacts/{id}", self.show_contact),
            ("GET", "/contacts/{id}/companies", self.contact_companies),
            ("POST", "/contacts/{id}/companies", self.attach_company),
            ("POST", "/companies", self.upsert_company),
            ("GET", "/admins", self.list_admins),
            ("GET", "/admins/{id}", self.show_admin),
            ("GET", "/ticket_states", self.ticket_states),
            ("POST", "/tickets", self.create_ticket),
            ("POST", "/tickets/search", self.search_tickets),
            ("GET", "/tickets/{id}", self.show_ticket),
            ("PUT", "/tickets/{id}", self.update_ticket),
        ]
        return [
            *self.sandbox_routes(),
            Route("/_sandbox/faults", self.set_faults, methods=["POST"]),
            Route("/_sandbox/ui/tickets/{id}", self.ui_edit, methods=["POST"]),
            Route("/_sandbox/admins", self.add_admin, methods=["POST"]),
            *(Route(path, self.api(f"{method} {path}", handler), methods=[method])
              for method, path, handler in api),
        ]  # fmt: skip


def create_app(config: IntercomConfig, store: IntercomStore | None = None) -> Starlette:
    sandbox = IntercomSandbox(config, store)
    return serve(sandbox, sandbox.routes())
