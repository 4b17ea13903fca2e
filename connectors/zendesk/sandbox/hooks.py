"""The stand-in's event webhook: every change of a ticket, through the API or as an agent
in the UI, POSTs Zendesk's event envelope to the configured URL, signed as Zendesk signs
(``connectors/zendesk/verify.py``), one event per kind of change, as Zendesk does.

The envelope follows Zendesk's documented examples ("Ticket events" schema): ``type``
``zen:event-type:ticket.<kind>``, ``id`` (a UUID), ``time``, ``subject``
``zen:ticket:<id>``, ``zendesk_event_version``, ``event`` (``current``/``previous``) and
``detail``, the ticket with ids as strings and status, priority and type in upper case.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.planhat.sandbox.delivery import SourceWebhook
from connectors.zendesk.verify import signed_headers

DELIVERY_TIMEOUT = httpx.Timeout(12.0, connect=2.0)  # Zendesk waits 12 s for an answer
KINDS = {"status": "status_changed", "priority": "priority_changed",
         "subject": "subject_changed", "tags": "tags_changed",
         "assignee_id": "agent_assignment_changed"}  # fmt: skip
ACCOUNT_ID = 10001


def detail(ticket: dict[str, Any]) -> dict[str, Any]:
    """A ticket as an event's ``detail`` carries it (the documented examples' spelling)."""

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    def upper(value: Any) -> str | None:
        return None if value is None else str(value).upper()

    return {
        "id": str(ticket["id"]),
        "status": upper(ticket["status"]),
        "priority": upper(ticket.get("priority")),
        "type": upper(ticket.get("type")),
        "subject": ticket.get("subject"),
        "description": ticket.get("description"),
        "requester_id": text(ticket.get("requester_id")),
        "submitter_id": text(ticket.get("submitter_id")),
        "assignee_id": text(ticket.get("assignee_id")),
        "organization_id": text(ticket.get("organization_id")),
        "external_id": ticket.get("external_id"),
        "tags": list(ticket.get("tags") or []),
        "created_at": ticket["created_at"],
        "updated_at": ticket["updated_at"],
        "via": {"channel": ticket.get("via", {}).get("channel")},
    }


def envelopes(ticket: dict[str, Any], changes: list[dict[str, Any]], created: bool,
              deleted: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """The events a change of ``ticket`` makes."""
    if created:
        kinds: list[tuple[str, Any]] = [("created", None)]
    elif deleted:
        kinds = [("soft_deleted", None)]
    else:
        kinds = [(KINDS[c["field_name"]], c) for c in changes if c.get("field_name") in KINDS]
        kinds += [("comment_added", c) for c in changes if c["type"] == "Comment"]
    events = []
    for kind, change in kinds:
        event: dict[str, Any] = {}
        if change is not None and change["type"] == "Change":
            was, now = change.get("previous_value"), change.get("value")
            if change["field_name"] in ("status", "priority"):
                was, now = (v.upper() if isinstance(v, str) else v for v in (was, now))
            event = {"current": now, "previous": was}
        events.append({
            "account_id": ACCOUNT_ID,
            "id": str(uuid.uuid4()),
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "type": f"zen:event-type:ticket.{kind}",
            "zendesk_event_version": "2022-11-06",
            "subject": f"zen:ticket:{ticket['id']}",
            "detail": detail(ticket),
            "event": event,
        })  # fmt: skip
    return events


class Webhook(SourceWebhook):
    """The configured event webhook (URL and signing secret), signed with the moment each
    body leaves."""

    def __init__(self, url: str | None, secret: str) -> None:
        super().__init__(
            url,
            secret,
            name="zendesk-sandbox-webhook",
            signed=lambda secret, body: signed_headers(secret, body, datetime.now(UTC)),
            timeout=DELIVERY_TIMEOUT,
        )
