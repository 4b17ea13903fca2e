"""Changes made in Planhat to a mirrored ticket, written to Intercom.

Shared: Planhat ``status`` ⇄ the ticket state. Ticket states are the workspace's own
(``GET /ticket_states``: ``id``, ``category`` ∈ submitted / in_progress /
waiting_on_customer / resolved, ``archived``, the ``ticket_types`` that use it;
https://developers.intercom.com/docs/references/2.14/rest-api/api.intercom.io/ticket-states),
read once per workspace and kept ``STATES_TTL`` seconds. A Planhat status becomes a state
id by ``intercom.state_map`` (``planhat status=state id``), else its category by
``intercom.status_map`` read backwards (Planhat ``closed``, unmapped, is ``resolved``),
then that category's first unarchived state of the ticket's type. With
``intercom.assignees=email`` also the owner (``custom.Owner``) ⇄ the admin assignee: the
admin with the owner's e-mail (``assignees.py``; none is a dead letter naming the owner's
``_id``; no owner unassigns). Everything else is Intercom's (``ownership``).

Each write reads the ticket first and sends nothing for a field that already holds what is
wanted (an echo, or someone was faster). When the ticket changed after Planhat's change,
its newest state-change (assignment) part says when its state (assignee) last changed, and
a later Intercom change wins. Then ``PUT /tickets/{id}`` with ``ticket_state_id`` and/or
``assignee_id`` and, from ``intercom.admin_id``, the admin it is attributed to (an
integer, as 2.14 documents). Intercom's answers: 429 waits until
``X-RateLimit-Reset`` (a Unix time; rest-api/errors/rate-limiting), 5xx and no answer
retry, anything else (401, 403, 404, 422) a dead letter carrying the answer.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import structlog

from connectors.helpdesk_owners import OWNER, owner_changed
from connectors.intercom import api
from connectors.intercom.api import reset_wait
from connectors.intercom.assignees import (
    ADMINS,
    UNASSIGNED,
    Admins,
    admin_for,
    assignee_id,
    workspace,
)
from connectors.intercom.mapping import state_category, status_map
from connectors.source import (
    TargetRateLimited,
    TargetRefused,
    TargetUnavailable,
    WriteBack,
    WriteBackContext,
)

log = structlog.get_logger(__name__)

ANSWER_CHARS = 500
STATES_TTL = 300.0


def state_map(options: Mapping[str, str]) -> dict[str, str]:
    """Planhat status → ticket state id, from ``intercom.state_map``."""
    pairs = (item.partition("=") for item in options.get("state_map", "").split(","))
    return {ph.strip(): sid.strip() for ph, _, sid in pairs if ph.strip() and sid.strip()}


def category_of(status: str, options: Mapping[str, str]) -> str:
    back = {ph: cat for cat, ph in status_map(options).items()}
    category = back.get(status) or ("resolved" if status == "closed" else None)
    if category is None:
        raise TargetRefused(
            f"the Planhat status {status!r} maps to no Intercom ticket state; add it to "
            "intercom.status_map (category=status,…) or intercom.state_map (status=state "
            "id,…), then retry this dead letter"
        )
    return category


def pick_state(states: list[Any], category: str, ticket_type: str | None) -> Mapping[str, Any]:
    """The category's first unarchived state, one the ticket's type uses if any does."""
    fits = [s for s in states if s.get("category") == category and not s.get("archived")]

    def used_by_type(state: Mapping[str, Any]) -> bool:
        types = (state.get("ticket_types") or {}).get("data") or []
        return any(str(t.get("id")) == ticket_type for t in types if isinstance(t, dict))

    chosen = [s for s in fits if used_by_type(s)] or fits
    if not chosen:
        raise TargetRefused(
            f"this Intercom workspace has no unarchived ticket state of category {category!r}"
        )
    first: Mapping[str, Any] = chosen[0]
    return first


class States:
    """The workspace's ticket states, per API base and token, kept ``ttl`` seconds."""

    def __init__(self, ttl: float = STATES_TTL, clock: Callable[[], float] = time.monotonic):
        self._ttl, self._clock = ttl, clock
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], tuple[float, list[Any]]] = {}

    def get(self, read: Callable[[], list[Any]], base: str, token: str) -> list[Any]:
        key = (base, hashlib.sha256(token.encode()).hexdigest())  # no secret kept as a key
        with self._lock:
            kept = self._kept.get(key)
        if kept and self._clock() - kept[0] <= self._ttl:
            return kept[1]
        states = read()
        with self._lock:
            self._kept[key] = (self._clock(), states)
        return states

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


STATES = States()


def _check(answer: httpx.Response, what: str) -> None:
    status = answer.status_code
    if status < 300:
        return
    said = f"Intercom answered {what} with {status}: {answer.text[:ANSWER_CHARS]}"
    if status == 429:
        raise TargetRateLimited(said, reset_wait(answer))
    if status >= 500 or status == 408:
        raise TargetUnavailable(said)
    raise TargetRefused(said)


def _moves_state(part_type: str) -> bool:
    # ``ticket_state_updated_by_admin`` and the like; closing and reopening leave parts of
    # their own (``close``, ``open``), as a closed ticket's notification shows.
    return "ticket_state" in part_type or part_type in ("close", "open")


def _assigns(part_type: str) -> bool:
    return "assign" in part_type  # ``assignment``, ``default_assignment``, ``assign_and_…``


def changed_at(ticket: Mapping[str, Any], moves: Callable[[str], bool] = _moves_state) -> int:
    """When the ticket's parts last did what ``moves`` says (its state, by default), in
    microseconds; 0: unknown."""
    holder = ticket.get("ticket_parts")
    parts = holder.get("ticket_parts") if isinstance(holder, dict) else None
    times = [
        int(part.get("created_at") or 0)
        for part in (parts if isinstance(parts, list) else [])
        if isinstance(part, dict) and moves(str(part.get("part_type", "")))
    ]
    return max(times, default=0) * 1_000_000


def state_changed_at(ticket: Mapping[str, Any]) -> int:
    """When the ticket's state last changed (its parts), in microseconds; 0: unknown."""
    return changed_at(ticket)


def send(
    context: WriteBackContext, change: WriteBack, states: States = STATES, admins: Admins = ADMINS
) -> None:
    if change.deleted:
        return  # a ticket deleted in Planhat stays in Intercom (Intercom owns the ticket)
    moving = "status" in change.fields
    assigning = owner_changed(change.fields, context.options)
    if not (moving or assigning):
        return
    status = str(change.fields.get("status") or "")
    explicit = state_map(context.options).get(status) if moving else None
    category = category_of(status, context.options) if moving and not explicit else None
    token = context.credentials.get("access_token")
    if not token:
        raise TargetRefused("intercom needs its access_token credential")
    base, http = api.base_url(context.credentials, context.api_base), context.http
    headers = api.headers(token)

    def read(path: str) -> Any:
        got = http.get(f"{base}{path}", headers=headers)
        if got.status_code == 404 and path.startswith("/admins/"):
            return None
        _check(got, f"GET {path.split('/')[1]}")
        return got.json()

    def all_states() -> list[Any]:
        def read_states() -> list[Any]:
            return list((read("/ticket_states") or {}).get("data") or [])

        return states.get(read_states, base, token)

    try:
        assignee = None
        if assigning:
            key = workspace(base, headers["authorization"])
            owner = change.fields["custom"][OWNER]
            assignee = admin_for(context.planhat, owner, key, read, admins)
        answer = http.get(f"{base}/tickets/{change.key}", headers=headers)
        _check(answer, "GET ticket")
        ticket = answer.json()
        body: dict[str, Any] = {}
        if moving:
            state_id = _state_to_write(ticket, change, explicit, category, all_states)
            if state_id:
                body["ticket_state_id"] = state_id
        if assignee is not None:
            held = assignee_id(ticket) or UNASSIGNED
            if held == assignee:
                log.info("intercom.write_back.already_assigned", ticket=change.key)
            elif changed_at(ticket, _assigns) > change.version:  # Intercom's is later
                log.info("intercom.write_back.intercom_later", ticket=change.key,
                         field="assignee")  # fmt: skip
            else:
                # 2.14 updateTicket: the assignee is the top-level ``assignee_id`` (a
                # string; "0" unassigns), ``admin_id`` (an integer) the admin the update
                # is by; 2.13's nested ``assignment`` object is gone (developers.intercom.com
                # /docs/references/2.14/changelog, "Ticket Update API Changes")
                body["assignee_id"] = assignee
        if not body:
            return
        if context.options.get("admin_id"):
            body["admin_id"] = int(context.options["admin_id"])
        answer = http.put(f"{base}/tickets/{change.key}", json=body, headers=headers)
    except httpx.HTTPError as error:
        raise TargetUnavailable(f"no answer from Intercom: {type(error).__name__}") from None
    _check(answer, "PUT ticket")
    log.info("intercom.write_back", ticket=change.key, state=body.get("ticket_state_id"),
             assignee=body.get("assignee_id"))  # fmt: skip


def _state_to_write(
    ticket: Any,
    change: WriteBack,
    explicit: str | None,
    category: str | None,
    all_states: Callable[[], list[Any]],
) -> str | None:
    """The state id to write; None when the ticket is in it already, or Intercom's own
    state change is later than Planhat's."""
    current = ticket.get("ticket_state") if isinstance(ticket, dict) else None
    current_id = str(current.get("id")) if isinstance(current, dict) else None
    if (explicit and current_id == explicit) or (category and state_category(ticket) == category):
        log.info("intercom.write_back.already", ticket=change.key)
        return None
    if state_changed_at(ticket) > change.version:  # Intercom's is the later change
        log.info("intercom.write_back.intercom_later", ticket=change.key)
        return None
    if explicit:
        return explicit

    kind = ticket.get("ticket_type")
    kind_id = str(kind.get("id")) if isinstance(kind, dict) else None
    chosen = pick_state(all_states(), category or "", kind_id)
    return str(chosen["id"])
