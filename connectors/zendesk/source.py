"""The ``zendesk`` source: Zendesk tickets mirrored to Planhat tickets, both ways.

In: event webhooks (``verify.py``), each completed with the ticket as REST gives it and,
for events that can change its status, a summary of its audits (``detail``,
``audits.py``: the status history, and whether the last change is our own write), and
the incremental export (``api.py``, polled); mapped by ``mapping.py``, the company found
by ``companies.py``. Deleted tickets (``ticket.soft_deleted`` events, export items with
status ``deleted``) become deletions. Back: status and priority changed in Planhat
(``write_back.py``; what Zendesk gives back for what was written: ``read_back``);
every other field is Zendesk's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.change import Change
from connectors.custom_fields.paths import FieldPath
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
from connectors.zendesk import api, audits, fields, mapping, verify, write_back
from connectors.zendesk.prepare import PREPARE

OPTIONS = (
    Option(
        name="status_map",
        default=mapping.DEFAULT_STATUS_MAP,
        pattern=r"[a-z]+=[A-Za-z0-9 _-]+(,[a-z]+=[A-Za-z0-9 _-]+)*",
        help="zendesk=planhat status pairs, comma-separated (solved=resolved,…); "
        "Planhat 'closed' is written to Zendesk as 'solved'",
    ),
    Option(
        name="assignees",
        default="off",
        pattern=r"off|email",
        help="'email': the assignee ⇄ the Planhat ticket's owner (custom field Owner), "
        "agents matched to Planhat users by e-mail; 'off': not synced",
    ),
    Option(
        name="ticket_updates",
        default=write_back.DEFAULT_TICKET_UPDATES,
        pattern=r"[1-9][0-9]*/[1-9][0-9]*",
        help="updates written to one ticket at most, per seconds (Zendesk: 30/600)",
    ),
)
ZENDESK_OWNS = frozenset(
    {"source", "title", "description", "email", "tags", "url", "companyId", "history"}
)


@dataclass(frozen=True, slots=True)
class ZendeskSource:
    name: str = "zendesk"
    options: tuple[Option, ...] = OPTIONS
    checks_on_receipt: bool = False
    credentials: tuple[Credential, ...] = (
        Credential(name="subdomain", help="the account's subdomain: <subdomain>.zendesk.com"),
        Credential(name="email", help="the API user's e-mail (API-token Basic auth)"),
        Credential(name="api_token", help="an API token of that user (an admin: the export)"),
    )
    api_base: str | None = None  # https://{subdomain}.zendesk.com
    prepare: Mapping[str, PrepareHook] = field(default_factory=lambda: PREPARE)
    # Calls a minute for the write-back, per credential and shared by every worker: each
    # call counts (a write is a read and a PUT, and the audits when Zendesk changed the
    # ticket later); with the export's 10 a minute this stays within the smallest plan's
    # account limit (https://developer.zendesk.com/api-reference/introduction/rate-limits/).
    write_rate_per_minute: float = 80.0
    field_paths: tuple[FieldPath, ...] = fields.FIELD_PATHS

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get("ZENDESK_WEBHOOK_SECRET")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify.verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return mapping.changes(body, event_id, options)

    def field_roots(self, body: bytes) -> Mapping[str, Any]:
        return fields.field_roots(body)

    def detail(self, credentials: Mapping[str, str], api_base: str | None, body: bytes) -> bytes:
        """The ticket an event names, as REST gives it now (a polled item already is)."""
        try:
            document = load_json(body)
        except BodyError as error:
            raise CannotComplete(str(error)) from None
        if isinstance(document, dict) and isinstance(document.get("ticket"), dict):
            return body
        ticket_id = mapping.ticket_id(document)
        kind = str(document.get("type", "")).rpartition(".")[2]
        if kind in mapping.DELETED_KINDS:  # nothing left to read: no call
            return json.dumps(mapping.deletion_of(document, ticket_id)).encode()
        with api.client(credentials, api_base) as http:
            read = api.read_ticket(http, ticket_id)
            if read is not None and kind in audits.AUDITED_KINDS:  # history, our echo
                read.update(audits.summary(audits.read(http, ticket_id), read["ticket"]))
        if read is None:  # deleted since: mapped as a deletion
            read = mapping.deletion_of(document, ticket_id)
        return json.dumps(read).encode()

    def feeds(
        self, credentials: Mapping[str, str], options: Mapping[str, str], api_base: str | None
    ) -> Iterator[tuple[Feed, httpx.Client]]:
        return api.feeds(credentials, api_base)

    def writes_back(self, model: str, options: Mapping[str, str]) -> bool:
        return model == "tickets"

    def ownership(self, model: str, options: Mapping[str, str]) -> Ownership:
        return Ownership(source=ZENDESK_OWNS) if model == "tickets" else Ownership()

    def write_back(self, context: WriteBackContext, change: WriteBack) -> None:
        write_back.send(context, change)

    def read_back(self, model: str, name: str, value: Any, options: Mapping[str, str]) -> Any:
        return write_back.read_back(name, value, options) if model == "tickets" else value


SOURCE = ZendeskSource()
