"""The Zendesk stand-in as an ASGI app: the few REST API v2 paths planhat-sync uses.

Serve it with ``planhat-sync zendesk-sandbox`` or call it in-process (httpx ASGI
transport). Like the Planhat sandbox it answers ``GET /_sandbox/stats`` and
``POST /_sandbox/reset`` without credentials; ``POST /_sandbox/ui/tickets/{id}`` is an
agent's edit in Zendesk's UI (via ``web``), with ``?before_next_put=1`` held until just
before the next API update of that ticket (an agent saving between a read and a write:
a ``safe_update`` conflict), ``POST /_sandbox/webhook`` pauses or resumes
the event webhook (a paused webhook's events are lost: a missed webhook),
``POST /_sandbox/export {"fail_page": n}`` answers the n-th export request from now 500,
``POST /_sandbox/access`` revokes an API user's token (401) or forbids it (403).

Zendesk's behaviours kept (developer.zendesk.com, API reference): API-token Basic auth
(``{email}/token:{token}``, else 401); ``PUT /api/v2/tickets/{id}`` with ``safe_update``
and an ``updated_stamp`` other than the ticket's ``updated_at`` is a 409; a closed ticket
cannot be updated (422); the account's requests per minute, 10 a minute for the
incremental export and 30 updates per ticket and user in 10 minutes, each a 429 with
``Retry-After``; the cursor export (``start_time`` then ``cursor``, ``end_of_stream``,
``include=users,organizations``) leaves out the last minute (``export_lag_s``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.planhat.sandbox.helpdesk import ApiStats, HelpdeskSandbox, serve
from connectors.planhat.sandbox.limiter import FixedWindow
from connectors.zendesk.sandbox.hooks import Webhook, envelopes
from connectors.zendesk.sandbox.store import Invalid, ZendeskStore

Endpoint = Callable[[Request], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ZendeskConfig:
    subdomain: str = "sandbox"
    credentials: Mapping[str, str] = field(default_factory=dict)  # e-mail → token; {}: any
    rate_per_minute: int = 700  # the account's (Zendesk Suite Professional)
    export_per_minute: int = 10
    ticket_updates: int = 30  # per ticket and user in ``ticket_window_s``
    ticket_window_s: float = 600.0
    export_lag_s: int = 60
    page_size: int = 1000
    webhook_url: str | None = None
    # Ids count from here: a stand-in started again (dev) must not hand out the ids of
    # tickets an earlier one made, which Planhat and our links still hold.
    first_id: int = 1
    # Zendesk's documented secret for test deliveries (source-webhooks.md)
    webhook_secret: str = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="  # noqa: S105


@dataclass(slots=True)
class Stats(ApiStats):
    conflicts: int = 0
    by_user: dict[str, Counter[str]] = field(default_factory=dict)  # e-mail → route → calls

    def as_json(self) -> dict[str, Any]:
        # ApiStats named: zero-argument super() fails in a slots dataclass (a new class)
        users = {user: dict(routes) for user, routes in self.by_user.items()}
        return {**ApiStats.as_json(self), "conflicts": self.conflicts, "by_user": users}


def _error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "description": description}, status, headers=headers)


class ZendeskSandbox(HelpdeskSandbox):
    stats: Stats

    def __init__(self, config: ZendeskConfig, store: ZendeskStore | None = None) -> None:
        self.config = config
        self.store = store or ZendeskStore(config.subdomain, first_id=config.first_id)
        self.webhook = Webhook(config.webhook_url, config.webhook_secret)
        self.stats = Stats()
        self.account = FixedWindow(config.rate_per_minute, 60.0)
        self.exports = FixedWindow(config.export_per_minute, 60.0)
        self.updates = FixedWindow(config.ticket_updates, config.ticket_window_s)
        self.agents: dict[str, int] = {}
        self.held_edits: dict[int, dict[str, Any]] = {}  # ticket → an agent's edit to come
        self.failing_export_page = 0  # the n-th export request from now answers 500 (once)
        self.forbidden: set[str] = set()  # API users answered 403 (a role that may not)
        self.credentials = dict(config.credentials)  # e-mail → token; {}: any

    def _agent(self, request: Request) -> str | None:
        """The API user's e-mail, or None when the credentials do not hold."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, token = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        email, slash, kind = user.rpartition("/")
        if not (slash and kind == "token" and email and token):
            return None
        wanted = self.credentials
        return email if not wanted or wanted.get(email) == token else None

    def _author(self, email: str) -> int:
        if email not in self.agents:
            self.agents[email] = self.store.create_user({"email": email, "role": "agent"})["id"]
        return self.agents[email]

    def api(self, route: str, handler: Callable[[Request, str], Any]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            self.stats.count(route)
            email = self._agent(request)
            if email is None:
                return _error(401, "Couldn't authenticate you", "Couldn't authenticate you")
            self.stats.by_user.setdefault(email, Counter())[route] += 1
            if email in self.forbidden:
                return _error(403, "Forbidden", "You do not have access to this page.")
            decision = self.account.take(email)
            if decision.allowed and route.endswith("cursor.json"):
                decision = self.exports.take(email)
            if not decision.allowed:
                self.stats.rate_limited += 1
                return _error(429, "APIRateLimitExceeded", "Rate limit exceeded",
                              **{"Retry-After": str(decision.retry_after)})  # fmt: skip
            try:
                return await handler(request, email)  # type: ignore[no-any-return]
            except Invalid as error:
                return _error(422, "RecordInvalid", str(error))
            except (KeyError, ValueError):
                return _error(404, "RecordNotFound", "Not found")

        return endpoint

    async def _body(self, request: Request, name: str) -> dict[str, Any]:
        document = json.loads(await request.body() or b"{}")
        inner = document.get(name) if isinstance(document, dict) else None
        if not isinstance(inner, dict):
            raise Invalid(f"the body must be {{{name!r}: {{…}}}}")
        return inner

    async def create_user(self, request: Request, email: str) -> Response:
        return JSONResponse({"user": self.store.create_user(await self._body(request, "user"))},
                            201)  # fmt: skip

    async def show_user(self, request: Request, email: str) -> Response:
        return JSONResponse({"user": self.store.users[int(request.path_params["id"])]})

    async def search_users(self, request: Request, email: str) -> Response:
        """``query`` matches part of a user's e-mail or name, case-insensitive, or the whole
        e-mail with ``email:`` (https://developer.zendesk.com/api-reference/ticketing/users/users/#search-users)."""
        query = request.query_params.get("query", "").strip().lower()
        exact = query.startswith("email:")
        wanted = query.removeprefix("email:")
        if not wanted:
            raise Invalid("query is required")
        with self.store.lock:
            found = [
                dict(user) for user in self.store.users.values()
                if (str(user.get("email") or "").lower() == wanted) or (not exact and (
                    wanted in str(user.get("email") or "").lower()
                    or wanted in str(user.get("name") or "").lower()))
            ]  # fmt: skip
        return JSONResponse({"users": found, "count": len(found), "next_page": None})

    async def create_org(self, request: Request, email: str) -> Response:
        org = self.store.create_organization(await self._body(request, "organization"))
        return JSONResponse({"organization": org}, 201)

    async def show_org(self, request: Request, email: str) -> Response:
        org = self.store.organizations[int(request.path_params["id"])]
        return JSONResponse({"organization": org})

    async def create_ticket(self, request: Request, email: str) -> Response:
        given = await self._body(request, "ticket")
        ticket = self.store.create_ticket(given, via="api", author=self._author(email))
        self.webhook.fire(envelopes(ticket, [], created=True))
        return JSONResponse({"ticket": ticket}, 201)

    async def show_ticket(self, request: Request, email: str) -> Response:
        ticket = dict(self.store.tickets[int(request.path_params["id"])])
        include = set(request.query_params.get("include", "").split(","))
        return JSONResponse({"ticket": ticket, **self.store.sideloads([ticket], include)})

    async def show_many(self, request: Request, email: str) -> Response:
        """``GET /api/v2/tickets/show_many?ids=1,2,3``: at most 100 tickets, those not
        found left out (developer.zendesk.com, Tickets: Show Multiple Tickets)."""
        ids = [int(i) for i in request.query_params.get("ids", "").split(",") if i.strip()]
        if not ids or len(ids) > 100:
            raise Invalid("ids: from 1 to 100 ticket ids, comma-separated")
        tickets = [dict(self.store.tickets[i]) for i in ids if i in self.store.tickets]
        return JSONResponse({"tickets": tickets, "count": len(tickets), "next_page": None})

    async def audits(self, request: Request, email: str) -> Response:
        ticket_id = int(request.path_params["id"])
        if ticket_id not in self.store.tickets:
            raise KeyError(ticket_id)
        audits = self.store.audits.get(ticket_id, [])
        return JSONResponse({"audits": audits, "count": len(audits), "next_page": None})

    async def update_ticket(self, request: Request, email: str) -> Response:
        ticket_id = int(request.path_params["id"])
        given = await self._body(request, "ticket")
        held = self.held_edits.pop(ticket_id, None)
        if held is not None:
            self._agent_edit(ticket_id, held)
        with self.store.lock:
            current = self.store.tickets[ticket_id]
            stamp = given.get("updated_stamp")
            if given.get("safe_update") and stamp != current["updated_at"]:
                self.stats.conflicts += 1
                return _error(409, "UpdateConflict",
                              "Safe Update prevented the update due to outdated ticket data. "
                              "Please fetch the latest ticket data and try again.")  # fmt: skip
            decision = self.updates.take(f"{email}:{ticket_id}")
            if not decision.allowed:
                self.stats.rate_limited += 1
                return _error(429, "TooManyRequests", "Too many updates to this ticket",
                              **{"Retry-After": str(decision.retry_after)})  # fmt: skip
            ticket, audit, changes = self.store.update_ticket(
                ticket_id, given, via="api", author=self._author(email)
            )
        if changes:
            self.stats.api_writes += 1
        else:
            self.stats.unchanged_writes += 1
        self.webhook.fire(envelopes(ticket, changes, created=False))
        return JSONResponse({"ticket": ticket, "audit": audit})

    async def delete_ticket(self, request: Request, email: str) -> Response:
        ticket = self.store.delete_ticket(int(request.path_params["id"]))
        self.webhook.fire(envelopes(ticket, [], created=False, deleted=True))
        return Response(status_code=204)

    async def export(self, request: Request, email: str) -> Response:
        if self.failing_export_page:
            self.failing_export_page -= 1
            if not self.failing_export_page:
                return _error(500, "InternalError", "A failing export page (the stand-in's)")
        query = request.query_params
        if "cursor" in query:
            gts, _, last = base64.urlsafe_b64decode(query["cursor"]).decode().partition(":")
            after = (int(gts), int(last))
        elif "start_time" in query:
            after = (int(query["start_time"]) - 1, 2**62)
        else:
            raise Invalid("start_time or cursor is required")
        until = int(self.store.clock()) - self.config.export_lag_s
        tickets, end = self.store.export(after, until, self.config.page_size)
        last_seen = (tickets[-1]["generated_timestamp"], tickets[-1]["id"]) if tickets else after
        cursor = base64.urlsafe_b64encode(f"{last_seen[0]}:{last_seen[1]}".encode()).decode()
        base = str(request.base_url).rstrip("/")
        include = set(query.get("include", "").split(","))
        return JSONResponse({
            "tickets": tickets,
            **self.store.sideloads(tickets, include),
            "after_cursor": cursor,
            "after_url": f"{base}/api/v2/incremental/tickets/cursor.json?cursor={cursor}",
            "before_cursor": None,
            "before_url": None,
            "end_of_stream": end,
        })  # fmt: skip

    async def ui_edit(self, request: Request) -> Response:
        """An agent's edit in Zendesk's UI: no API call is counted, the webhook fires."""
        given = json.loads(await request.body())
        ticket_id = int(request.path_params["id"])
        if ticket_id not in self.store.tickets:
            return _error(404, "RecordNotFound", "Not found")
        if request.query_params.get("before_next_put"):
            self.held_edits[ticket_id] = given
            return JSONResponse({"held": True})
        return JSONResponse({"ticket": self._agent_edit(ticket_id, given)})

    def _agent_edit(self, ticket_id: int, given: dict[str, Any]) -> dict[str, Any]:
        ticket, _, changes = self.store.update_ticket(ticket_id, given, via="web", author=None)
        self.stats.ui_edits += 1
        self.webhook.fire(envelopes(ticket, changes, created=False))
        return ticket

    async def control_export(self, request: Request) -> Response:
        self.failing_export_page = int(json.loads(await request.body()).get("fail_page") or 0)
        return JSONResponse({"fail_page": self.failing_export_page})

    async def control_access(self, request: Request) -> Response:
        """``{"email": …, "forbidden": true}``: that API user is answered 403 from now;
        ``{"email": …, "token": …}``: its token is that one (another: a 401)."""
        given = json.loads(await request.body())
        email = str(given.get("email") or "")
        if given.get("forbidden"):
            self.forbidden.add(email)
        else:
            self.forbidden.discard(email)
        if "token" in given:
            self.credentials[email] = str(given["token"])
        return JSONResponse({"forbidden": sorted(self.forbidden)})

    def ticket_count(self) -> int:
        return len(self.store.tickets)

    def limiters(self) -> tuple[FixedWindow, ...]:
        return (self.account, self.exports, self.updates)

    def routes(self) -> list[Route]:
        t = "/api/v2/tickets/{id:int}"
        api = [
            ("POST", "/api/v2/users.json", self.create_user),
            ("GET", "/api/v2/users/search.json", self.search_users),
            ("GET", "/api/v2/users/{id:int}.json", self.show_user),
            ("POST", "/api/v2/organizations.json", self.create_org),
            ("GET", "/api/v2/organizations/{id:int}.json", self.show_org),
            ("POST", "/api/v2/tickets.json", self.create_ticket),
            ("GET", "/api/v2/tickets/show_many.json", self.show_many),
            ("GET", f"{t}.json", self.show_ticket),
            ("PUT", f"{t}.json", self.update_ticket),
            ("DELETE", f"{t}.json", self.delete_ticket),
            ("GET", f"{t}/audits.json", self.audits),
            ("GET", "/api/v2/incremental/tickets/cursor.json", self.export),
        ]
        routes = []
        for method, path, handler in api:
            endpoint = self.api(f"{method} {path}", handler)
            routes.append(Route(path, endpoint, methods=[method]))
            if path.endswith(".json") and "cursor" not in path:  # the suffix is optional
                routes.append(Route(path.removesuffix(".json"), endpoint, methods=[method]))
        return [
            *self.sandbox_routes(),
            Route("/_sandbox/export", self.control_export, methods=["POST"]),
            Route("/_sandbox/access", self.control_access, methods=["POST"]),
            Route("/_sandbox/ui/tickets/{id:int}", self.ui_edit, methods=["POST"]),
            *routes,
        ]


def create_app(config: ZendeskConfig, store: ZendeskStore | None = None) -> Starlette:
    sandbox = ZendeskSandbox(config, store)
    return serve(sandbox, sandbox.routes())
