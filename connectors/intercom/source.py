"""The ``intercom`` source: Intercom tickets mirrored to Planhat tickets, both ways.

In: signed notifications (``verify.py``), each completed with the ticket as REST gives it
and its contact (``detail``), and ``POST /tickets/search`` (``api.py``, polled); mapped
by ``mapping.py``, the company found by ``companies.py``, the owner (with
``intercom.assignees=email``) by ``assignees.py``. Back: the state, from Planhat's status,
and the assignee, from the owner (``write_back.py``); every other field is Intercom's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import httpx

from connectors.change import Change
from connectors.intercom import api, mapping, verify, write_back
from connectors.intercom.prepare import PREPARE
from connectors.options import Option
from connectors.source import (
    CannotComplete,
    Credential,
    Feed,
    Ownership,
    PrepareHook,
    WriteBack,
    WriteBackContext,
)
from connectors.webhooks import BodyError, load_json

PAIRS = r"[A-Za-z0-9 _-]+=[A-Za-z0-9 _-]+(,[A-Za-z0-9 _-]+=[A-Za-z0-9 _-]+)*"
OPTIONS = (
    Option(
        name="status_map",
        default=mapping.DEFAULT_STATUS_MAP,
        pattern=r"[a-z_]+=[A-Za-z0-9 _-]+(,[a-z_]+=[A-Za-z0-9 _-]+)*",
        help="ticket state category=Planhat status pairs, comma-separated "
        "(submitted=new,in_progress=open,waiting_on_customer=pending,resolved=closed); "
        "default: the category itself",
    ),
    Option(
        name="state_map",
        default="",
        pattern=f"({PAIRS})?",
        help="Planhat status=Intercom ticket state id pairs, comma-separated; a status not "
        "named goes to the first unarchived state of its category",
    ),
    Option(
        name="assignees",
        default="off",
        pattern=r"off|email",
        help="'email': the admin assignee ⇄ the Planhat ticket's owner (custom field Owner), "
        "admins matched to Planhat users by e-mail; 'off': not synced",
    ),
    Option(
        name="admin_id",
        default="",
        pattern=r"[0-9]*",
        help="the Intercom admin id state changes made from Planhat are attributed to; "
        "its parts are our own writes",
    ),
    Option(
        name="app_package_code",
        default="",
        pattern=r"[A-Za-z0-9_.-]*",
        help="our Intercom app's package code: ticket parts carrying it are our own writes "
        "(dropped as echoes); empty: only the hash rule and admin_id recognise them",
    ),
)
INTERCOM_OWNS = frozenset({"source", "title", "description", "email", "companyId"})


@dataclass(frozen=True, slots=True)
class IntercomSource:
    name: str = "intercom"
    options: tuple[Option, ...] = OPTIONS
    checks_on_receipt: bool = False
    credentials: tuple[Credential, ...] = (
        Credential(name="access_token", help="an access token of the Intercom app"),
        Credential(name="region", help="the workspace's region: us (default), eu or au"),
    )
    api_base: str | None = None  # https://api.intercom.io, or the region's
    prepare: Mapping[str, PrepareHook] = field(default_factory=lambda: PREPARE)
    # A write is a read and a PUT (and the states once in 5 minutes): 120 writes a minute
    # stay far within Intercom's 10,000 requests a minute per app, polls included.
    write_rate_per_minute: float = 120.0

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get("INTERCOM_CLIENT_SECRET")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify.verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return mapping.changes(body, event_id, options)

    def detail(self, credentials: Mapping[str, str], api_base: str | None, body: bytes) -> bytes:
        """The ticket a notification or feed item names, as REST gives it now, with its
        contact; a topic we do not mirror is kept as it is (no call)."""
        try:
            document = load_json(body)
        except BodyError as error:
            raise CannotComplete(str(error)) from None
        if not mapping.mirrored(document):
            return body
        if isinstance(document.get("contact"), dict):
            return body  # completed already
        ticket_id = mapping.ticket_id(document)
        with api.client(credentials, api_base) as http:
            ticket = document.get("ticket") or api.read_ticket(http, ticket_id)
            if ticket is None:  # deleted since: mapped as a deletion
                return json.dumps({"ticket": {"id": ticket_id, "deleted": True}}).encode()
            return json.dumps(api.complete(http, ticket)).encode()

    def feeds(
        self, credentials: Mapping[str, str], options: Mapping[str, str], api_base: str | None
    ) -> Iterator[tuple[Feed, httpx.Client]]:
        return api.feeds(credentials, api_base)

    def writes_back(self, model: str, options: Mapping[str, str]) -> bool:
        return model == "tickets"

    def ownership(self, model: str, options: Mapping[str, str]) -> Ownership:
        return Ownership(source=INTERCOM_OWNS) if model == "tickets" else Ownership()

    def write_back(self, context: WriteBackContext, change: WriteBack) -> None:
        write_back.send(context, change)


SOURCE = IntercomSource()
