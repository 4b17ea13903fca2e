"""Read a Chargebee site's customers, subscriptions and invoices, for a backfill.

``GET /api/v2/customers``, ``/api/v2/subscriptions`` and ``/api/v2/invoices``, ``limit=100``,
the next page by the answer's ``next_offset`` (absent on the last page:
https://apidocs.chargebee.com/docs/api#pagination_and_filtering). ``--since`` filters on
``created_at[after]`` (``date[after]`` for invoices, which have no ``created_at`` filter:
https://apidocs.chargebee.com/docs/api/invoices#list_invoices); ``after`` is exclusive,
hence ``since - 1``. Each entry of ``list`` holds the resource under its own name
(a subscription's entry carries its customer too).

Each resource is wrapped as the event a webhook would carry (``customer_changed``,
``subscription_changed``, ``invoice_updated``: content as Chargebee sends it), so the one
mapping (``mapping.py``) reads it. Its event id is
``backfill:<resource>:<id>:<resource_version>`` (``updated_at`` when absent): a page read
again is stored once, and a resource changed since is a new event. A customer and its
subscription often share an id in Chargebee, hence the resource's name in the id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

import httpx

from connectors.chargebee.poll import PAGE, chargebee_base_url, chargebee_client
from connectors.source import ObjectList, ObjectPage

# list name → (path, the resource in each entry, the event type, the --since filter)
LISTS: dict[str, tuple[str, str, str, str]] = {
    "customers": ("/api/v2/customers", "customer", "customer_changed", "created_at"),
    "subscriptions": (
        "/api/v2/subscriptions",
        "subscription",
        "subscription_changed",
        "created_at",
    ),
    "invoices": ("/api/v2/invoices", "invoice", "invoice_updated", "date"),
}


def as_event(
    entry: dict[str, Any], resource: str, event_type: str, read_at: int
) -> tuple[str, bytes]:
    """A list entry as a webhook event: (its deterministic id, its body)."""
    obj = entry[resource]
    version = obj.get("resource_version") or obj.get("updated_at") or obj.get("created_at")
    event_id = f"backfill:{resource}:{obj['id']}:{version}"
    content = {name: value for name, value in entry.items() if isinstance(value, dict)}
    event = {
        "id": event_id,
        "object": "event",
        "event_type": event_type,
        "occurred_at": read_at,
        "source": "backfill",
        "content": content,
    }
    return event_id, json.dumps(event).encode()


def fetch_page(
    name: str, client: httpx.Client, offset: str | None, since: int | None
) -> ObjectPage:
    path, resource, event_type, since_filter = LISTS[name]
    params: dict[str, str | int] = {"limit": PAGE}
    if since is not None:
        params[f"{since_filter}[after]"] = since - 1
    if offset:
        params["offset"] = offset
    response = client.get(path, params=params)
    response.raise_for_status()
    page = response.json()
    read_at = int(time.time())
    events = [as_event(entry, resource, event_type, read_at) for entry in page.get("list") or []]
    next_offset = page.get("next_offset")
    return ObjectPage(events=events, next=str(next_offset) if next_offset else None)


def object_lists(
    credentials: Mapping[str, str], api_base: str | None
) -> Iterator[tuple[ObjectList, httpx.Client]]:
    """Customers first, so companies exist before the licenses and invoices naming them."""
    site = api_base or credentials.get("site")
    if (key := credentials.get("api_key")) and site:
        for name in LISTS:
            client = chargebee_client(key, chargebee_base_url(site))
            yield ObjectList(name, partial(fetch_page, name)), client
