"""Intercom tickets → Planhat tickets (pure).

A stored event is a notification (``type: notification_event``) completed with the ticket
as REST gives it (``source.detail``), or an item of the search feed completed the same
way: both become ``{"ticket": …, "contact": {"id", "email"}, "companies": [...]}``. A
notification whose topic is not a ticket change we mirror (``TOPICS``) is kept as it came
and maps to no change: the event is marked "ignored".

Each ticket is one Planhat ticket keyed by ``sourceId`` (the ticket's API ``id``, not the
inbox's ``ticket_id``): ``source`` "intercom", ``title`` and ``description`` from the
default ticket attributes ``_default_title_`` and ``_default_description_``, ``email``
(the contact's: Planhat silently drops tickets without one, so a ticket whose contact has
none is a dead letter saying so) and ``status``, the ticket state's ``category`` through
``intercom.status_map`` (default: the category itself, so a state change made in Planhat
maps back to a category without a table). Its company is found just before it is sent
(``connectors/helpdesk_companies.py``), from two hints: the contact's companies'
``company_id`` (the id the workspace gave the company; a Planhat company's
``externalId``) and the e-mail's domain. With ``intercom.assignees=email`` its owner too
(``connectors/intercom/assignees.py``), from the assignee's e-mail. Version:
``updated_at`` (Unix seconds) in microseconds, so that it compares with Planhat's change
times as Zendesk's do.

Our own writes coming back (``Change.echo_of_ours``, dropped by the engine on top of the
hash rule): every change leaves a ticket part at the ticket's ``updated_at``; when every
part of the ticket's last change is ours, the event is our write-back coming back. A part
is ours when its ``app_package_code`` (present only "if this part was created via API",
2.14 ticket_part) is ``intercom.app_package_code``, or when its author is the admin
``intercom.admin_id`` (the sync admin our writes are attributed to). Neither set: only the
hash rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.change import Change, MappingError, RecordRejected
from connectors.helpdesk_owners import assigns
from connectors.intercom.assignees import ASSIGNEE_HINT, assignee_id
from connectors.webhooks import BodyError, load_json

COMPANY_HINT = "~intercomCompanies"  # the contact's companies' company_id (never sent)
CATEGORIES = ("submitted", "in_progress", "waiting_on_customer", "resolved")
DEFAULT_STATUS_MAP = ",".join(f"{c}={c}" for c in CATEGORIES)
# Topics that may change what is mirrored (https://developers.intercom.com/docs/references/
# 2.14/webhooks/webhook-models, "Ticket" topics); any other is kept and marked "ignored".
TOPICS = frozenset({
    "ticket.created", "ticket.state.updated", "ticket.attribute.updated",
    "ticket.admin.assigned", "ticket.closed", "ticket.contact.attached",
    "ticket.contact.detached",
})  # fmt: skip
MICROSECONDS = 1_000_000


def status_map(options: Mapping[str, str]) -> dict[str, str]:
    """State category → Planhat status, from ``intercom.status_map`` (``resolved=closed,…``)."""
    pairs = (
        item.partition("=") for item in options.get("status_map", DEFAULT_STATUS_MAP).split(",")
    )
    return {cat.strip(): ph.strip() for cat, _, ph in pairs if cat.strip()}


def mirrored(document: Any) -> bool:
    """Whether a stored notification (or feed item) is one the ticket is read again for."""
    if not isinstance(document, dict):
        return False
    if document.get("type") != "notification_event":
        return isinstance(document.get("ticket"), dict)  # a feed item, or completed
    return document.get("topic") in TOPICS


def ticket_id(document: Mapping[str, Any]) -> str:
    """The ticket a notification (``data.item``) or a feed item (``ticket``) names."""
    data = document.get("data")
    item = data.get("item") if isinstance(data, dict) else document.get("ticket")
    if isinstance(item, dict) and item.get("type", "ticket") == "ticket" and item.get("id"):
        return str(item["id"])
    raise MappingError("the Intercom notification names no ticket (no data.item.id)")


def state_category(ticket: Mapping[str, Any]) -> str:
    """The ticket state's category: an object from 2.12 on, a bare string before."""
    state = ticket.get("ticket_state")
    if isinstance(state, dict):
        return str(state.get("category") or "submitted")
    return str(state or "submitted")


def _parts(ticket: Mapping[str, Any]) -> list[Any]:
    holder = ticket.get("ticket_parts")
    parts = holder.get("ticket_parts") if isinstance(holder, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def ours_last(ticket: Mapping[str, Any], options: Mapping[str, str]) -> bool:
    """Whether the ticket's last change is ours: each part made at its ``updated_at``
    carries our ``app_package_code`` or is by our sync admin (the module's doc)."""
    code = options.get("app_package_code", "").strip()
    admin = options.get("admin_id", "").strip()
    if not (code or admin):
        return False
    last = [p for p in _parts(ticket) if str(p.get("created_at")) == str(ticket.get("updated_at"))]

    def ours(part: Mapping[str, Any]) -> bool:
        author = part.get("author")
        who = author if isinstance(author, dict) else {}
        if admin and who.get("type") == "admin" and str(who.get("id")) == admin:
            return True
        return bool(code) and part.get("app_package_code") == code

    return bool(last) and all(ours(p) for p in last)


def assignee_hint(ticket: Mapping[str, Any], admin: Any) -> str | None:
    """The assignee's e-mail as completed (``admin``), "" when the ticket is unassigned;
    None (the owner left as it is) when its admin's e-mail is not known."""
    wanted = assignee_id(ticket)
    if wanted is None:
        return ""
    if isinstance(admin, dict) and str(admin.get("id")) == wanted and admin.get("email"):
        return str(admin["email"]).strip().lower()
    return None


def version(ticket: Mapping[str, Any]) -> int:
    updated = ticket.get("updated_at")
    if isinstance(updated, bool) or not isinstance(updated, int | str):
        raise MappingError(f"intercom ticket {ticket.get('id')}: no usable updated_at")
    text = str(updated).strip()
    if not (text.isascii() and text.isdigit()):
        raise MappingError(f"intercom ticket {ticket.get('id')}: updated_at is not Unix time")
    return int(text) * MICROSECONDS


def changes(body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
    try:
        document = load_json(body)
    except BodyError as error:
        raise MappingError(str(error)) from None
    if isinstance(document, dict) and document.get("type") == "notification_event":
        if not mirrored(document):
            return []  # a topic we do not mirror: kept, marked ignored
        raise MappingError("an Intercom notification must be completed with its ticket first")
    if not isinstance(document, dict) or not isinstance(document.get("ticket"), dict):
        raise MappingError("an Intercom event must be completed with its ticket before mapping")
    ticket = document["ticket"]
    key = str(ticket.get("id") or "")
    if not key:
        raise MappingError("an Intercom ticket without an id")
    if ticket.get("deleted"):
        return []  # deletions are not mirrored yet (README)
    contact = document.get("contact") if isinstance(document.get("contact"), dict) else {}
    email = str((contact or {}).get("email") or "").strip().lower()
    if not email:
        who = "it names no contact" if not contact else "its contact has no e-mail"
        raise RecordRejected(
            f"intercom ticket {key}: {who}, and Planhat silently drops tickets without one; "
            "give the ticket's contact an e-mail in Intercom, then retry"
        )
    attributes = ticket.get("ticket_attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    category = state_category(ticket)
    fields: dict[str, Any] = {
        "source": "intercom",
        "title": str(attributes.get("_default_title_") or ""),
        "description": str(attributes.get("_default_description_") or ""),
        "email": email,
        "status": status_map(options).get(category, category),
    }
    hints = [
        str(c["company_id"])
        for c in document.get("companies") or []
        if isinstance(c, dict) and c.get("company_id")
    ]
    if hints:
        fields[COMPANY_HINT] = hints
    if assigns(options):  # its owner is found before it is sent (assignees.py)
        assignee = assignee_hint(ticket, document.get("admin"))
        if assignee is not None:
            fields[ASSIGNEE_HINT] = assignee
    change = Change(model="tickets", key_field="sourceId", key=key, version=version(ticket),
                    event_id=event_id, fields=fields,
                    echo_of_ours=ours_last(ticket, options))  # fmt: skip
    return [change]
