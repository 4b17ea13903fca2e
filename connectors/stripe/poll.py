"""Fetch Stripe events from its events API, so events a webhook never delivered arrive.

``GET /v1/events?created[gte]=…&limit=100&starting_after=…`` lists events newest first and
keeps them 30 days (https://docs.stripe.com/api/events/list). The caller keeps a cursor
(the newest ``created`` seen) and asks again from a little before it: the lower bound is
inclusive and a look-back window catches events created late in the same seconds;
duplicates are dropped by event id when stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from connectors.source import Feed
from connectors.tls import tls

STRIPE_API = "https://api.stripe.com"
PAGE = 100
LOOKBACK_SECONDS = 300


def stripe_client(api_key: str, base_url: str = STRIPE_API, **kwargs: Any) -> httpx.Client:
    return httpx.Client(
        verify=tls(),
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=httpx.Timeout(30.0, connect=5.0),
        follow_redirects=False,
        **kwargs,
    )


def events_since(client: httpx.Client, created_gte: int, *, max_pages: int = 1000) -> list[Any]:
    """Every event created at or after ``created_gte``, oldest first."""
    events: list[Any] = []
    starting_after: str | None = None
    for _ in range(max_pages):
        params: dict[str, str | int] = {"created[gte]": created_gte, "limit": PAGE}
        if starting_after:
            params["starting_after"] = starting_after
        response = client.get("/v1/events", params=params)
        response.raise_for_status()
        page = response.json()
        data = page.get("data") or []
        events.extend(data)
        if not page.get("has_more") or not data:
            break
        starting_after = data[-1]["id"]
    events.sort(key=lambda event: (event.get("created", 0), event.get("id", "")))
    return events


def _created(event: Any) -> int:
    return int(event.get("created", 0))


def _id(event: Any) -> str:
    return str(event["id"])


FEED = Feed("stripe", events_since, _created, _id, LOOKBACK_SECONDS)


def feeds(
    credentials: Mapping[str, str], api_base: str | None
) -> Iterator[tuple[Feed, httpx.Client]]:
    """Stripe's events, with a secret or restricted key that may read them."""
    if key := credentials.get("api_key"):
        yield FEED, stripe_client(key, api_base or STRIPE_API)
