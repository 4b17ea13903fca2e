"""Zendesk tickets → Planhat tickets (pure).

A stored event is either an event webhook's envelope completed with the ticket as REST
gives it (``source.detail``), or an item of the incremental export: both are
``{"ticket": …, "users": [the requester], "organizations": [its organization]}``. An
event's own ``detail`` spells statuses and priorities in upper case and ids as strings
(Zendesk's documented examples); ``normalise`` reads it as REST would.

Each ticket is one Planhat ticket keyed by ``sourceId`` (the ticket id): ``source``
"zendesk", ``title``, ``description``, ``email`` (the requester's: Planhat silently drops
tickets without one, so a requester without one is a dead letter), ``status`` (through
``zendesk.status_map``), ``severity`` (the priority), ``tags``, ``url`` (the agent's)
and, when the event was completed with its audits, ``history`` (each status through the
same map, with its time: ``audits.py``) and whether it is our own write coming back
(``Change.echo_of_ours``).
A deleted ticket is a deletion (``action="deleted"``): its Planhat ticket is deleted and
the ticket is never created again (``worker/pipeline/deletions.py``).
Its company is found just before it is sent (``companies.py``), from two hints: the
organization's ``external_id`` and the requester's e-mail. Version: ``updated_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.change import Change, MappingError, RecordRejected, version_number
from connectors.webhooks import BodyError, load_json
from connectors.zendesk.assignees import ASSIGNEE_HINT, assigns

# Event kinds saying the ticket is gone (Zendesk's "Ticket events": soft-deleted tickets
# can be restored from Deleted tickets, permanently deleted ones cannot).
DELETED_KINDS = frozenset({"soft_deleted", "permanently_deleted", "deleted"})
ORG_HINT = "~zendeskOrganization"  # the organization's external_id (never sent)
STATUSES = ("new", "open", "pending", "hold", "solved")
DEFAULT_STATUS_MAP = ",".join(f"{s}={s}" for s in STATUSES)


def status_map(options: Mapping[str, str]) -> dict[str, str]:
    """Zendesk status → Planhat status, from ``zendesk.status_map`` (``solved=resolved,…``)."""
    pairs = (
        item.partition("=") for item in options.get("status_map", DEFAULT_STATUS_MAP).split(",")
    )
    return {zd.strip(): ph.strip() for zd, _, ph in pairs if zd.strip()}


def normalise(detail: Mapping[str, Any]) -> dict[str, Any]:
    """An event's ``detail`` as REST spells the same ticket: ids as integers, status and
    priority in lower case."""

    def number(value: Any) -> int | None:
        return int(value) if value not in (None, "") else None

    ticket = dict(detail)
    for name in ("id", "requester_id", "submitter_id", "assignee_id", "organization_id"):
        if name in ticket:
            ticket[name] = number(ticket[name])
    for name in ("status", "priority", "type"):
        if isinstance(ticket.get(name), str):
            ticket[name] = ticket[name].lower()
    return ticket


def ticket_id(document: Mapping[str, Any]) -> int:
    """The ticket an envelope (``subject`` ``zen:ticket:<id>``, or its detail) names."""
    detail = document.get("detail")
    if isinstance(detail, dict) and detail.get("id") not in (None, ""):
        return int(normalise(detail)["id"])
    subject = str(document.get("subject", ""))
    if subject.startswith("zen:ticket:") and subject[11:].isdigit():
        return int(subject[11:])
    raise MappingError("the Zendesk event names no ticket (no detail.id nor zen:ticket subject)")


def agent_url(ticket: Mapping[str, Any]) -> str | None:
    api = str(ticket.get("url") or "")
    root, sep, _ = api.partition("/api/v2/")
    return f"{root}/agent/tickets/{ticket['id']}" if sep else None


def changes(body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
    try:
        document = load_json(body)
    except BodyError as error:
        raise MappingError(str(error)) from None
    if not isinstance(document, dict) or not isinstance(document.get("ticket"), dict):
        raise MappingError("a Zendesk event must be completed with its ticket before mapping")
    ticket = document["ticket"]
    key = str(ticket["id"])
    if ticket.get("status") == "deleted":
        return [Change(model="tickets", key_field="sourceId", key=key, event_id=event_id,
                       version=_deleted_version(ticket), action="deleted")]  # fmt: skip
    requester = _find(document.get("users"), ticket.get("requester_id"))
    email = str(requester.get("email") or "").strip().lower()
    if not email:
        raise RecordRejected(
            f"zendesk ticket {key}: its requester has no e-mail, and Planhat silently drops "
            "tickets without one; give the requester an e-mail in Zendesk, then retry"
        )
    zd_status = str(ticket.get("status") or "new")
    org = _find(document.get("organizations"), ticket.get("organization_id"))
    fields: dict[str, Any] = {
        "source": "zendesk",
        "title": ticket.get("subject") or "",
        "description": ticket.get("description") or "",
        "email": email,
        "status": status_map(options).get(zd_status, zd_status),
        "severity": ticket.get("priority") or "",
        "tags": sorted(ticket.get("tags") or []),
        "url": agent_url(ticket),
    }
    if isinstance(document.get("status_changes"), list):  # read from its audits (detail)
        statuses = status_map(options)
        fields["history"] = [
            {"status": statuses.get(c["status"], c["status"]), "time": c["time"]}
            for c in document["status_changes"]
        ]
    if org.get("external_id"):
        fields[ORG_HINT] = str(org["external_id"])
    if assigns(options):  # its owner is found before it is sent (assignees.py)
        assignee = _find(document.get("users"), ticket.get("assignee_id"))
        if ticket.get("assignee_id") is None or assignee:
            fields[ASSIGNEE_HINT] = str(assignee.get("email") or "").strip().lower()
    try:
        version = version_number(ticket["updated_at"])
    except (KeyError, ValueError) as error:
        raise MappingError(f"zendesk ticket {key}: no usable updated_at ({error})") from None
    present = {name: value for name, value in fields.items() if value is not None}
    change = Change(model="tickets", key_field="sourceId", key=key, version=version,
                    event_id=event_id, fields=present,
                    echo_of_ours=document.get("our_write") is True)  # fmt: skip
    return [change]


def deletion_of(envelope: Mapping[str, Any], ticket_id: int) -> dict[str, Any]:
    """A deleted ticket as the export gives it (status ``deleted``), from the event that
    says so: its version is the event's ``detail.updated_at``, else the event's time."""
    detail = envelope.get("detail") if isinstance(envelope.get("detail"), dict) else {}
    when = (detail or {}).get("updated_at") or envelope.get("time")
    return {"ticket": {"id": ticket_id, "status": "deleted", "updated_at": when}}


def _deleted_version(ticket: Mapping[str, Any]) -> int:
    try:
        if ticket.get("updated_at"):
            return version_number(ticket["updated_at"])
        # seconds, as updated_at's microseconds: one kind of version per record
        return int(ticket["generated_timestamp"]) * 1_000_000
    except (KeyError, TypeError, ValueError) as error:
        what = f"zendesk ticket {ticket.get('id')}: deleted, but when? ({error})"
        raise MappingError(what) from None


def _find(items: Any, wanted: Any) -> dict[str, Any]:
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and wanted is not None and item.get("id") == wanted:
            return item
    return {}
