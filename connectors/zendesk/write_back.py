"""Changes made in Planhat to a mirrored ticket, written to Zendesk.

Shared fields: ``status`` ⇄ Planhat ``status`` (through ``zendesk.status_map``; Planhat
``closed`` becomes ``solved``: a closed Zendesk ticket can never be reopened) and
``priority`` ⇄ Planhat ``severity``, and with ``zendesk.assignees=email`` ``assignee_id`` ⇄
the owner (``custom.Owner``: the agent with the owner's e-mail, ``assignees.py``; none is
a dead letter naming the owner). Everything else is Zendesk's (``ownership``).

Each write reads the ticket first, decides per field, and sends only what still differs
with ``PUT /api/v2/tickets/{id}`` carrying ``safe_update: true`` and ``updated_stamp``
(the ``updated_at`` just read) and our origin in ``metadata`` (kept in the audit's
``metadata.custom``). Per field: a value Zendesk already has is not sent; when the ticket
changed after Planhat's change, its audits say when the field last changed, and a later
Zendesk change wins. A 409 (someone wrote meanwhile): read again, decide again, at most
twice more. Each PUT takes one of the ticket's updates (``zendesk.ticket_updates``, 30
in 10 minutes, shared by every worker): a ticket over it waits alone (``TargetBusy``).
Zendesk's answers: 429 waits (``Retry-After``), 5xx and no answer retry,
anything else (401, 403, 404, 422) a dead letter carrying the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
import structlog

from connectors.change import version_number
from connectors.helpdesk_owners import owner_changed
from connectors.planhat.errors import DEFAULT_RATE_LIMIT_WAIT, rate_limit_wait
from connectors.source import (
    TargetBusy,
    TargetRateLimited,
    TargetRefused,
    TargetUnavailable,
    WriteBack,
    WriteBackContext,
)
from connectors.zendesk import api
from connectors.zendesk.assignees import OWNER, zendesk_assignee
from connectors.zendesk.mapping import status_map

log = structlog.get_logger(__name__)

ORIGIN = {"sync_origin": "planhat-sync"}
PRIORITIES = ("urgent", "high", "normal", "low")
ATTEMPTS = 3  # the first write and at most two more after a 409
ANSWER_CHARS = 500
# https://developer.zendesk.com/api-reference/introduction/rate-limits/ : "30 updates per
# 10 minutes per user per ticket"
DEFAULT_TICKET_UPDATES = "30/600"
SHARED = {"status": "status", "severity": "priority"}  # Planhat field → Zendesk field


def wanted(fields: Mapping[str, Any], options: Mapping[str, str]) -> dict[str, Any]:
    """What Zendesk should hold for Planhat's changed shared fields; ``TargetRefused`` for a
    value Zendesk cannot take. (The owner is matched in ``send``: it takes calls.)"""
    out: dict[str, Any] = {}
    if "status" in fields:
        # Planhat's status is a free string a CSM may type ("Open ", "SOLVED"): read as
        # the map spells it, case and surrounding spaces aside (scenario 15, no write).
        planhat = str(fields["status"] or "")
        back = {ph.strip().casefold(): zd for zd, ph in status_map(options).items()}
        spelled = planhat.strip().casefold()
        status = back.get(spelled) or ("solved" if spelled == "closed" else None)
        if status is None or status == "closed":
            raise TargetRefused(
                f"the Planhat status {planhat!r} maps to no Zendesk status; add it to "
                "zendesk.status_map (zendesk=planhat,…), then retry this dead letter"
            )
        out["status"] = status
    if "severity" in fields:
        severity = str(fields["severity"] or "").strip().lower()
        if severity not in PRIORITIES:
            raise TargetRefused(
                f"the Planhat severity {fields['severity']!r} is no Zendesk priority "
                f"({', '.join(PRIORITIES)})"
            )
        out["priority"] = severity
    return out


def read_back(name: str, value: Any, options: Mapping[str, str]) -> Any:
    """What Zendesk's changes carry for Planhat's ``value`` of a shared field once it is
    written there, as ``mapping.changes`` gives it to Planhat: the status through the map
    both ways (``closed`` is written ``solved``, read back as the map's name for
    ``solved``; ``"New "`` as ``new``), the severity in lower case. A value Zendesk cannot
    take (a dead letter when written) comes back as itself."""
    if name not in SHARED:
        return value
    try:
        written = wanted({name: value}, options)[SHARED[name]]
    except TargetRefused:
        return value
    return status_map(options).get(written, written) if name == "status" else written


def ticket_updates(options: Mapping[str, str]) -> tuple[int, float]:
    """``zendesk.ticket_updates`` (``30/600``): updates per ticket, and in how many seconds."""
    limit, _, window = options.get("ticket_updates", DEFAULT_TICKET_UPDATES).partition("/")
    return int(limit), float(window)


def _check(answer: httpx.Response, what: str) -> None:
    status = answer.status_code
    if status < 300:
        return
    said = f"Zendesk answered {what} with {status}: {answer.text[:ANSWER_CHARS]}"
    if status == 429:
        wait = rate_limit_wait(answer)
        raise TargetRateLimited(said, DEFAULT_RATE_LIMIT_WAIT if wait is None else wait)
    if status >= 500 or status == 408:
        raise TargetUnavailable(said)
    raise TargetRefused(said)


Audits = Callable[[], list[Any]]  # reads the ticket's audits


def ours(audit: Mapping[str, Any]) -> bool:
    """Whether the audit is one of our writes (its ``metadata.custom`` carries ORIGIN)."""
    custom = (audit.get("metadata") or {}).get("custom") or {}
    return all(custom.get(name) == value for name, value in ORIGIN.items())


def _changed_at(audits: list[Any], field: str) -> int:
    """When someone else changed ``field`` last in Zendesk (its audits), in microseconds;
    0: never. Our own writes are skipped: they wrote what Planhat held, never a change
    Planhat's newer one should lose to (a write of an earlier Planhat change, stamped
    after this one, would otherwise win over it)."""
    for audit in reversed(audits):
        if ours(audit):
            continue
        if any(e.get("field_name") == field for e in audit.get("events") or []):
            return version_number(audit["created_at"])
    return 0


def decide(
    read_audits: Audits, ticket: Mapping[str, Any], want: Mapping[str, Any], planhat_at: int
) -> dict[str, Any]:
    """The fields still to write: those that differ, unless someone changed them in
    Zendesk later (our own writes are no such change)."""
    send = {name: value for name, value in want.items() if ticket.get(name) != value}
    if send and version_number(ticket["updated_at"]) > planhat_at:
        audits = read_audits()
        for name in list(send):
            if _changed_at(audits, name) > planhat_at:
                log.info("zendesk.write_back.zendesk_later", ticket=ticket["id"], field=name)
                del send[name]
    return send


def send(context: WriteBackContext, change: WriteBack) -> None:
    if change.deleted:
        return  # a ticket deleted in Planhat stays in Zendesk (Zendesk owns the ticket)
    want = wanted(change.fields, context.options)
    assigning = owner_changed(change.fields, context.options)
    if not (want or assigning):
        return
    base = api.base_url(context.credentials, context.api_base)
    email, token = context.credentials.get("email"), context.credentials.get("api_token")
    if not (base and email and token):
        raise TargetRefused("zendesk needs its subdomain, email and api_token credentials")
    headers = {"authorization": api.basic(email, token)}
    path = f"{base}/api/v2/tickets/{change.key}.json"
    http = context.http

    def search(wanted_email: str) -> list[Any]:
        # https://developer.zendesk.com/api-reference/ticketing/users/users/#search-users
        answer = http.get(f"{base}/api/v2/users/search.json", params={"query": wanted_email},
                          headers=headers)  # fmt: skip
        _check(answer, "GET users/search")
        return list(answer.json().get("users") or [])

    if assigning:
        owner = change.fields["custom"][OWNER]
        try:
            want["assignee_id"] = zendesk_assignee(context.planhat, owner, search)
        except httpx.HTTPError as error:
            raise TargetUnavailable(f"no answer from Zendesk: {type(error).__name__}") from None

    def read_audits() -> list[Any]:
        answer = http.get(f"{base}/api/v2/tickets/{change.key}/audits.json", headers=headers)
        _check(answer, "GET audits")
        return list(answer.json().get("audits") or [])

    for attempt in range(ATTEMPTS):
        try:
            answer = http.get(path, headers=headers)
            _check(answer, "GET ticket")
            ticket = answer.json()["ticket"]
            fields = decide(read_audits, ticket, want, change.version)
            if not fields:
                return
            limit, window = ticket_updates(context.options)
            wait = context.record_window(f"ticket:{change.key}", limit, window)
            if wait > 0:  # Zendesk's 30 updates per ticket in 10 minutes: this one waits
                raise TargetBusy(f"ticket {change.key} has had {limit} updates in {window:g} s",
                                 wait)  # fmt: skip
            stamp = ticket["updated_at"]
            body = {"ticket": {**fields, "safe_update": True, "updated_stamp": stamp,
                               "metadata": ORIGIN}}  # fmt: skip
            answer = http.put(path, json=body, headers=headers)
        except httpx.HTTPError as error:
            raise TargetUnavailable(f"no answer from Zendesk: {type(error).__name__}") from None
        if answer.status_code == 409:
            log.info("zendesk.write_back.conflict", ticket=change.key, attempt=attempt + 1)
            continue
        _check(answer, "PUT ticket")
        log.info("zendesk.write_back", ticket=change.key, fields=sorted(fields))
        return
    raise TargetUnavailable(f"Zendesk answered 409 {ATTEMPTS} times: the ticket keeps changing")
