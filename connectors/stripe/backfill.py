"""Read a Stripe account's customers, subscriptions and invoices, for a backfill.

Stripe keeps 30 days of events (https://docs.stripe.com/api/events), so what a new
connection must bring in is read from the objects themselves:
``GET /v1/customers``, ``/v1/subscriptions?status=all`` (without it, canceled ones are
left out: https://docs.stripe.com/api/subscriptions/list#list_subscriptions-status) and
``/v1/invoices``, newest first, ``limit=100``, the next page ``starting_after`` the last
id while ``has_more`` (https://docs.stripe.com/api/pagination), ``created[gte]`` for
``--since``. A 429 (https://docs.stripe.com/rate-limits) may come without Retry-After:
the backfill then waits its default and asks for the page again.

Each object is wrapped as the ``*.updated`` event a webhook would carry, so the one
mapping (``mapping.py``) reads it. Its event id is ``backfill:<object id>:<digest of the
object>``: Stripe objects carry no update time (only ``created``), so the digest is what
says the object changed; a page read again is the same events, stored once. The event's
``created`` is when it was read: the object is its state at that time, so a webhook
event older than the read is stale, one newer wins (invariant 3).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

import httpx

from connectors.source import ObjectList, ObjectPage
from connectors.stripe.poll import PAGE, STRIPE_API, stripe_client

# list name → (path, the event type its objects are wrapped as, fixed parameters)
LISTS: dict[str, tuple[str, str, dict[str, str]]] = {
    "customers": ("/v1/customers", "customer.updated", {}),
    "subscriptions": ("/v1/subscriptions", "customer.subscription.updated", {"status": "all"}),
    "invoices": ("/v1/invoices", "invoice.updated", {}),
}


def as_event(obj: dict[str, Any], event_type: str, read_at: int) -> tuple[str, bytes]:
    """``obj`` as a webhook event: (its deterministic id, its body)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    event_id = f"backfill:{obj['id']}:{hashlib.sha256(canonical).hexdigest()[:16]}"
    event = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": read_at,
        "livemode": bool(obj.get("livemode", False)),
        "data": {"object": obj},
    }
    return event_id, json.dumps(event).encode()


def fetch_page(
    name: str, client: httpx.Client, starting_after: str | None, since: int | None
) -> ObjectPage:
    path, event_type, fixed = LISTS[name]
    params: dict[str, str | int] = {"limit": PAGE, **fixed}
    if since is not None:
        params["created[gte]"] = since
    if starting_after:
        params["starting_after"] = starting_after
    response = client.get(path, params=params)
    response.raise_for_status()
    page = response.json()
    data: list[dict[str, Any]] = page.get("data") or []
    read_at = int(time.time())
    events = [as_event(obj, event_type, read_at) for obj in data]
    more = bool(page.get("has_more")) and bool(data)
    return ObjectPage(events=events, next=str(data[-1]["id"]) if more else None)


def object_lists(
    credentials: Mapping[str, str], api_base: str | None
) -> Iterator[tuple[ObjectList, httpx.Client]]:
    """Customers first, so companies exist before the licenses and invoices naming them."""
    if key := credentials.get("api_key"):
        for name in LISTS:
            client = stripe_client(key, api_base or STRIPE_API)
            yield ObjectList(name, partial(fetch_page, name)), client
