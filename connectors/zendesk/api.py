"""Zendesk's REST API v2 as planhat-sync reads it: the client (API-token Basic auth,
``{email}/token``), one ticket with its requester and organization sideloaded, and the
cursor-based incremental ticket export.

``GET /api/v2/incremental/tickets/cursor.json?start_time=<unix>`` first, then
``?cursor=<after_cursor>`` until ``end_of_stream``, with ``include=users,organizations``
(https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/).
The export allows 10 requests a minute; beat polls once a minute, so one poll reads at
most ``MAX_PAGES`` pages and the next goes on from the newest ticket it stored.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from connectors.planhat.errors import DEFAULT_RATE_LIMIT_WAIT, rate_limit_wait
from connectors.source import CannotComplete, Feed, NoBudget
from connectors.tls import tls

PAGE_PATH = "/api/v2/incremental/tickets/cursor.json"
INCLUDE = "users,organizations"
MAX_PAGES = 8  # per poll: within the export's 10 requests a minute, polled once a minute
LOOKBACK_SECONDS = 120  # asked again before the cursor: the export skips the last minute
Document = dict[str, Any]


def base_url(credentials: Mapping[str, str], api_base: str | None) -> str | None:
    if api_base:
        return api_base.rstrip("/")
    subdomain = credentials.get("subdomain")
    return f"https://{subdomain}.zendesk.com" if subdomain else None


def basic(email: str, token: str) -> str:
    """API-token Basic auth: ``{email}/token:{token}``."""
    return "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()


def client(credentials: Mapping[str, str], api_base: str | None, **kwargs: Any) -> httpx.Client:
    """A client for these credentials; ``CannotComplete`` when some are missing."""
    url = base_url(credentials, api_base)
    email, token = credentials.get("email"), credentials.get("api_token")
    if not (url and email and token):
        raise CannotComplete("zendesk needs ZENDESK_SUBDOMAIN, ZENDESK_EMAIL, ZENDESK_API_TOKEN")
    return httpx.Client(
        verify=tls(),
        base_url=url,
        headers={"authorization": basic(email, token), "accept": "application/json"},
        timeout=httpx.Timeout(30.0, connect=5.0),
        follow_redirects=False,
        **kwargs,
    )


def one(ticket: Document, users: list[Any], organizations: list[Any]) -> Document:
    """A ticket with its requester, assignee and organization: what ``mapping.changes``
    reads."""
    people = {ticket.get("requester_id"), ticket.get("assignee_id")} - {None}
    return {
        "ticket": ticket,
        "users": [u for u in users if u.get("id") in people],
        "organizations": [o for o in organizations if o.get("id") == ticket.get("organization_id")],
    }


def raise_for_status(answer: httpx.Response) -> None:
    """``NoBudget`` for a 429, with Zendesk's ``Retry-After`` (the account's requests a
    minute: the event waits, no attempt counted), else httpx's own error."""
    if answer.status_code == 429:
        wait = rate_limit_wait(answer)
        raise NoBudget(DEFAULT_RATE_LIMIT_WAIT if wait is None else wait)
    answer.raise_for_status()


def read_ticket(http: httpx.Client, ticket_id: int) -> Document | None:
    """The ticket as REST gives it now, sideloaded; None when it is gone (404)."""
    answer = http.get(f"/api/v2/tickets/{ticket_id}.json", params={"include": INCLUDE})
    if answer.status_code == 404:
        return None
    raise_for_status(answer)
    page = answer.json()
    return one(page["ticket"], page.get("users") or [], page.get("organizations") or [])


def tickets_since(http: httpx.Client, start_time: int, *, max_pages: int = MAX_PAGES) -> list[Any]:
    """Tickets changed at or after ``start_time``, oldest first, each as ``one`` gives it."""
    found: list[Document] = []
    params: dict[str, str | int] = {"start_time": start_time, "include": INCLUDE}
    for _ in range(max_pages):
        answer = http.get(PAGE_PATH, params=params)
        answer.raise_for_status()
        page = answer.json()
        users, orgs = page.get("users") or [], page.get("organizations") or []
        found.extend(one(ticket, users, orgs) for ticket in page.get("tickets") or [])
        if page.get("end_of_stream") or not page.get("after_cursor"):
            break
        params = {"cursor": page["after_cursor"], "include": INCLUDE}
    return found


def _position(item: Any) -> int:
    return int(item["ticket"].get("generated_timestamp") or 0)


def _event_id(item: Any) -> str:
    ticket = item["ticket"]
    return f"ticket-{ticket['id']}@{ticket.get('updated_at')}"


FEED = Feed("zendesk", tickets_since, _position, _event_id, LOOKBACK_SECONDS)


def feeds(
    credentials: Mapping[str, str], api_base: str | None
) -> Iterator[tuple[Feed, httpx.Client]]:
    try:
        yield FEED, client(credentials, api_base)
    except CannotComplete:
        return
