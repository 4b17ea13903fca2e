"""Intercom's REST API as planhat-sync reads it: the client, a ticket completed with its
contact and the contact's companies, and the polling feed (``POST /tickets/search``).

Version: every request pins ``Intercom-Version: 2.14``, the first version whose ticket
API is the one this connector speaks: tickets carry ``ticket_state`` as an object with a
``category`` (2.12 on; before, a bare string), ``PUT /tickets/{id}`` takes
``ticket_state_id`` and ``admin_id`` (2.10 and 2.11 took ``state`` and ``assignment``),
and ticket parts carry ``app_package_code`` when made through the API
(https://developers.intercom.com/docs/references/2.14/rest-api/api.intercom.io/tickets/updateticket).
Without the header Intercom answers with the version set in the app, which may be any.

Regions: a workspace's data is hosted in one region, US, EU or Australia, and its token
works only against that region's API host (Intercom's "Regional hosting" page). A
connection picks it with the credential ``region`` (``us``, the default, ``eu``, ``au``;
``INTERCOM_REGION`` for ``default``); ``INTERCOM_API_BASE`` (a URL, or a region's name)
overrides it for the whole process (a stand-in).

Polling: ``POST /tickets/search`` for ``updated_at > since``, where Intercom's ``>``
means "greater or equal" (searchTickets, "Accepted Operators"), ``since`` being the cursor
less ``LOOKBACK_SECONDS``; paged with ``pagination.starting_after`` until no ``pages.next``.
Tickets seen twice (once per page, when one changes while we page) count once per
``(id, updated_at)``. The first poll starts at 0: it is the backfill.

Rate limits: a 429 (``X-RateLimit-Reset``, a Unix time; rest-api/errors/rate-limiting)
while completing an event raises ``NoBudget`` with the wait: the event waits that long
without counting an attempt (``worker/intake/details.py``). In a poll it fails the poll:
the cursor stays, the next poll asks again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog

from connectors.intercom.assignees import ADMINS, Admins, assignee_id, workspace
from connectors.source import CannotComplete, Feed, NoBudget
from connectors.tls import tls

log = structlog.get_logger(__name__)

VERSION = "2.14"
REGIONS = {
    "us": "https://api.intercom.io",
    "eu": "https://api.eu.intercom.io",
    "au": "https://api.au.intercom.io",
}
PER_PAGE = 150  # the largest page search allows
MAX_PAGES = 200  # per poll; 30,000 changed tickets, far within 10,000 requests a minute
LOOKBACK_SECONDS = 120
CONTACT_TTL = 300.0
CONTACT_CACHE = 10_000
DEFAULT_WAIT = 10.0  # Intercom's windows are 10 seconds long
MAX_WAIT = 120.0
Document = dict[str, Any]


def reset_wait(answer: httpx.Response) -> float:
    """Seconds until ``X-RateLimit-Reset`` (a Unix time), by the answer's own clock."""
    try:
        reset = float(answer.headers.get("X-RateLimit-Reset", ""))
    except ValueError:
        return DEFAULT_WAIT
    try:
        now = parsedate_to_datetime(answer.headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        now = time.time()
    return min(MAX_WAIT, max(1.0, reset - now))


def raise_for_status(answer: httpx.Response) -> None:
    """``NoBudget`` for a 429 (wait until the reset), else httpx's own error."""
    if answer.status_code == 429:
        raise NoBudget(reset_wait(answer))
    answer.raise_for_status()


def base_url(credentials: Mapping[str, str], api_base: str | None) -> str:
    given = (api_base or credentials.get("region") or "us").strip()
    return REGIONS.get(given.lower(), given).rstrip("/")


def headers(token: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {token}",
        "accept": "application/json",
        "intercom-version": VERSION,
    }


def client(credentials: Mapping[str, str], api_base: str | None, **kwargs: Any) -> httpx.Client:
    """A client for these credentials; ``CannotComplete`` without an access token."""
    token = credentials.get("access_token")
    if not token:
        raise CannotComplete("intercom needs INTERCOM_ACCESS_TOKEN")
    return httpx.Client(
        verify=tls(),
        base_url=base_url(credentials, api_base),
        headers=headers(token),
        timeout=httpx.Timeout(30.0, connect=5.0),
        follow_redirects=False,
        **kwargs,
    )


def read_ticket(http: httpx.Client, ticket_id: str) -> Document | None:
    """The ticket as REST gives it now; None when it is gone (404)."""
    answer = http.get(f"/tickets/{ticket_id}")
    if answer.status_code == 404:
        return None
    raise_for_status(answer)
    ticket: Document = answer.json()
    return ticket


class Contacts:
    """Contacts by id (their e-mail and companies), kept ``ttl`` seconds: a ticket names
    its contact only by reference (``ContactReference``: ``type``, ``id``,
    ``external_id``), and one contact usually has many tickets."""

    def __init__(self, ttl: float = CONTACT_TTL, clock: Callable[[], float] = time.monotonic):
        self._ttl, self._clock = ttl, clock
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], tuple[float, Document]] = {}

    def get(self, http: httpx.Client, contact_id: str) -> Document:
        """``{"id", "email", "companies": [{"id", "company_id", "name"}]}``; ``{}`` when
        Intercom has no such contact."""
        # per workspace: the API host and the token (hashed: no secret kept as a key)
        token = hashlib.sha256(http.headers.get("authorization", "").encode()).hexdigest()
        key = (f"{http.base_url}#{token[:16]}", contact_id)
        with self._lock:
            kept = self._kept.get(key)
        if kept and self._clock() - kept[0] <= self._ttl:
            return kept[1]
        found = _read_contact(http, contact_id)
        with self._lock:
            if len(self._kept) >= CONTACT_CACHE:
                self._kept.clear()  # simplest bound; a refill costs a read per contact
            self._kept[key] = (self._clock(), found)
        return found

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


def _read_contact(http: httpx.Client, contact_id: str) -> Document:
    answer = http.get(f"/contacts/{contact_id}")
    if answer.status_code == 404:
        return {}
    raise_for_status(answer)
    contact = answer.json()
    # GET /contacts/{id}/companies (https://developers.intercom.com/docs/references/2.14/
    # rest-api/api.intercom.io/contacts/listcompaniesforacontact): a list in ``data``.
    answer = http.get(f"/contacts/{contact_id}/companies")
    raise_for_status(answer)
    companies = [
        {"id": c.get("id"), "company_id": c.get("company_id"), "name": c.get("name")}
        for c in answer.json().get("data") or []
        if isinstance(c, dict)
    ]
    return {"id": contact.get("id"), "email": contact.get("email"), "companies": companies}


CONTACTS = Contacts()


def contact_id(ticket: Mapping[str, Any]) -> str | None:
    """The first contact a ticket names (``contacts.contacts[0].id``)."""
    holder = ticket.get("contacts")
    refs = holder.get("contacts") if isinstance(holder, dict) else None
    first = refs[0] if isinstance(refs, list) and refs else None
    return str(first["id"]) if isinstance(first, dict) and first.get("id") else None


def complete(
    http: httpx.Client, ticket: Document, contacts: Contacts = CONTACTS, admins: Admins = ADMINS
) -> Document:
    """A ticket with its contact and that contact's companies, and its assignee's e-mail
    (``admin``, when assigned; ``assignees.py``): what ``mapping`` reads."""
    wanted = contact_id(ticket)
    contact = contacts.get(http, wanted) if wanted else {}
    companies = contact.get("companies") or []
    document: Document = {
        "ticket": ticket,
        "contact": {"id": contact.get("id"), "email": contact.get("email")} if contact else {},
        "companies": list(companies),
    }
    assignee = assignee_id(ticket)
    if assignee:
        document["admin"] = {"id": assignee, "email": _admin_email(http, assignee, admins)}
    return document


def _admin_email(http: httpx.Client, admin_id: str, admins: Admins) -> str | None:
    """The assignee's e-mail; None when unknown. A token that may not read admins (403:
    the app lacks "Read admins") completes the ticket all the same, the owner untouched."""

    def read(path: str) -> Any:
        answer = http.get(path)
        if answer.status_code == 404:
            return None
        raise_for_status(answer)
        return answer.json()

    key = workspace(str(http.base_url), http.headers.get("authorization", ""))
    try:
        return admins.email_of(key, read, admin_id)
    except httpx.HTTPStatusError as error:
        if error.response.status_code not in (401, 403):
            raise
        log.warning("intercom.admins_unreadable", status=error.response.status_code)
        admins.unreadable(key)
        return None


def tickets_since(
    http: httpx.Client, since: int, *, max_pages: int = MAX_PAGES, per_page: int = PER_PAGE
) -> list[Any]:
    """Tickets updated at or after ``since``, oldest first, each ``{"ticket": …}``; each
    (id, updated_at) once. The contact is read when the item is completed (``detail``)."""
    seen: dict[tuple[str, int], Document] = {}
    pagination: dict[str, Any] = {"per_page": per_page}
    for _ in range(max_pages):
        body = {
            "query": {"field": "updated_at", "operator": ">", "value": since},
            "pagination": pagination,
        }
        answer = http.post("/tickets/search", json=body)
        answer.raise_for_status()
        page = answer.json()
        for ticket in page.get("tickets") or []:
            seen.setdefault((str(ticket["id"]), int(ticket.get("updated_at") or 0)), ticket)
        after = ((page.get("pages") or {}).get("next") or {}).get("starting_after")
        if not after:
            break
        pagination = {"per_page": per_page, "starting_after": after}
    ordered = sorted(seen.items(), key=lambda item: (item[0][1], item[0][0]))
    return [{"ticket": ticket} for _, ticket in ordered]


def _position(item: Any) -> int:
    return int(item["ticket"].get("updated_at") or 0)


def _event_id(item: Any) -> str:
    ticket = item["ticket"]
    return f"ticket-{ticket['id']}@{ticket.get('updated_at')}"


FEED = Feed("intercom", tickets_since, _position, _event_id, LOOKBACK_SECONDS)


def feeds(
    credentials: Mapping[str, str], api_base: str | None
) -> Iterator[tuple[Feed, httpx.Client]]:
    try:
        yield FEED, client(credentials, api_base)
    except CannotComplete:
        return
