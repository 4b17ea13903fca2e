"""Fetch Chargebee events from its events API, so events a webhook never delivered arrive.

``GET /api/v2/events?occurred_at[after]=…&sort_by[asc]=occurred_at&limit=100&offset=…``
lists events oldest first, a page at a time, ``next_offset`` naming the next page
(https://apidocs.chargebee.com/docs/api/events#list_events). The API key is the HTTP
Basic username, with no password. The caller asks from a little before its cursor (the
bound is exclusive and events may be recorded late); duplicates are dropped by event id.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from connectors.source import Feed
from connectors.tls import tls

PAGE = 100
LOOKBACK_SECONDS = 300


def chargebee_base_url(site: str) -> str:
    """``acme`` → https://acme.chargebee.com; a full URL (a local fake) stays as it is."""
    return site if "://" in site else f"https://{site}.chargebee.com"


def chargebee_client(api_key: str, base_url: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(
        verify=tls(),
        base_url=base_url,
        auth=httpx.BasicAuth(api_key, ""),
        timeout=httpx.Timeout(30.0, connect=5.0),
        follow_redirects=False,
        **kwargs,
    )


def events_since(client: httpx.Client, after: int, *, max_pages: int = 1000) -> list[Any]:
    """Every event that occurred after ``after`` (unix seconds), oldest first."""
    events: list[Any] = []
    offset: str | None = None
    for _ in range(max_pages):
        params: dict[str, str | int] = {
            "occurred_at[after]": after,
            "sort_by[asc]": "occurred_at",
            "limit": PAGE,
        }
        if offset:
            params["offset"] = offset
        response = client.get("/api/v2/events", params=params)
        response.raise_for_status()
        page = response.json()
        events.extend(entry["event"] for entry in page.get("list") or [])
        offset = page.get("next_offset")
        if not offset:
            break
    events.sort(key=lambda event: (event.get("occurred_at", 0), event.get("id", "")))
    return events


def _occurred(event: Any) -> int:
    return int(event.get("occurred_at", 0))


def _id(event: Any) -> str:
    return str(event["id"])


FEED = Feed("chargebee", events_since, _occurred, _id, LOOKBACK_SECONDS)


def feeds(
    credentials: Mapping[str, str], api_base: str | None
) -> Iterator[tuple[Feed, httpx.Client]]:
    """Chargebee's events, given an API key and the site (or a base URL that replaces it)."""
    site = api_base or credentials.get("site")
    if (key := credentials.get("api_key")) and site:
        yield FEED, chargebee_client(key, chargebee_base_url(site))
