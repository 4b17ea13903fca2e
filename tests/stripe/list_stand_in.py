"""A stand-in for a Stripe account's list API: customers, subscriptions and invoices.

``GET /v1/{customers,subscriptions,invoices}`` as Stripe pages them
(https://docs.stripe.com/api/pagination): newest first, ``limit`` 1-100 (default 10),
``starting_after`` an id of the list (an unknown one is a 400), ``has_more``,
``created[gte]``; subscriptions leave canceled ones out unless ``status=all``
(https://docs.stripe.com/api/subscriptions/list); a wrong key is a 401 with Stripe's
error body. Every request is written down; ``fail_at`` makes one of them a 500.

The objects are the published 2020-08-27 payloads (``tests/fixtures/stripe``) with ids,
names and times of their own.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "stripe" / "stripe-events-2020-08-27"
API_KEY = "sk_test_backfill"
START = 1_600_000_000


def _template(name: str) -> dict[str, Any]:
    event = json.loads((EVENTS / f"{name}.json").read_text())
    obj: dict[str, Any] = event["data"]["object"]
    return obj


def customers(count: int) -> list[dict[str, Any]]:
    template = _template("customer.created")
    return [
        copy.deepcopy(template)
        | {"id": f"cus_bf_{n:05d}", "name": f"Customer {n}", "created": START + 60 * n}
        for n in range(count)
    ]


def subscriptions(count: int, canceled: int) -> list[dict[str, Any]]:
    """One item each, for customers 0 … count-1; the last ``canceled`` of them canceled."""
    template = _template("customer.subscription.created")
    made = []
    for n in range(count):
        sub = copy.deepcopy(template)
        sub |= {"id": f"sub_bf_{n:05d}", "customer": f"cus_bf_{n:05d}", "created": START + 60 * n}
        sub["items"]["data"][0]["id"] = f"si_bf_{n:05d}"
        if n >= count - canceled:
            sub |= {"status": "canceled", "canceled_at": START + 90 * n, "ended_at": START + 90 * n}
        made.append(sub)
    return made


def invoices(count: int) -> list[dict[str, Any]]:
    """Paid, one line each, for customers 0 … count-1."""
    template = _template("invoice.paid")
    made = []
    for n in range(count):
        invoice = copy.deepcopy(template)
        invoice |= {"id": f"in_bf_{n:05d}", "customer": f"cus_bf_{n:05d}", "created": START + n}
        for line in invoice["lines"]["data"]:
            line["id"] = f"il_bf_{n:05d}"
        made.append(invoice)
    return made


class StripeAccount:
    def __init__(
        self,
        *,
        customers: list[dict[str, Any]],
        subscriptions: list[dict[str, Any]],
        invoices: list[dict[str, Any]],
    ) -> None:
        newest_first = {"key": lambda o: (o["created"], o["id"]), "reverse": True}
        self.objects = {
            "customers": sorted(customers, **newest_first),  # type: ignore[arg-type]
            "subscriptions": sorted(subscriptions, **newest_first),  # type: ignore[arg-type]
            "invoices": sorted(invoices, **newest_first),  # type: ignore[arg-type]
        }
        self.requests: list[tuple[str, str | None]] = []  # (list, starting_after), in order
        self.fail_at: int | None = None  # this request (0-based, counting all) answers 500
        self.rate_limited_at: int | None = None  # this one answers 429, Retry-After: 1
        self.app = Starlette(routes=[Route("/v1/{name}", self.list)])

    def pages_asked(self) -> dict[tuple[str, str | None], int]:
        asked: dict[tuple[str, str | None], int] = {}
        for request in self.requests:
            asked[request] = asked.get(request, 0) + 1
        return asked

    async def list(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Invalid API Key provided: sk_test_****")
        if name not in self.objects:
            return _error(404, f"Unrecognized request URL (GET: /v1/{name})")
        params = request.query_params
        limit = int(params.get("limit", 10))
        if not 1 <= limit <= 100:
            return _error(400, "This value must be less than or equal to 100.")
        matching = self.objects[name]
        if name == "subscriptions" and params.get("status") != "all":
            matching = [o for o in matching if o["status"] != "canceled"]
        if "created[gte]" in params:
            matching = [o for o in matching if o["created"] >= int(params["created[gte]"])]
        after = params.get("starting_after")
        self.requests.append((name, after))
        if self.fail_at == len(self.requests) - 1:
            return _error(500, "An unknown error occurred", kind="api_error")
        if self.rate_limited_at == len(self.requests) - 1:
            limited = _error(429, "Too many requests", kind="rate_limit_error")
            limited.headers["Retry-After"] = "1"
            return limited
        if after is not None:
            ids = [o["id"] for o in matching]
            if after not in ids:
                return _error(400, f"No such object: '{after}'")
            matching = matching[ids.index(after) + 1 :]
        page = {
            "object": "list",
            "url": f"/v1/{name}",
            "data": matching[:limit],
            "has_more": len(matching) > limit,
        }
        return JSONResponse(page)


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)
