"""A helpdesk ticket's assignee ⇄ its Planhat ticket's owner, matched by e-mail: the part
every helpdesk shares (Zendesk: ``connectors/zendesk/assignees.py``; Intercom:
``connectors/intercom/assignees.py``), for a connection with ``<source>.assignees=email``
(off by default).

Planhat's ticket has no owner field (its documented fields: ``source``, ``sourceId``,
``companyId``, ``email``, ``title``, ``description``, ``url``, ``tags``, ``type``,
``severity``, ``status``, ``history``; https://www.planhat.com/developers/api/ticket), so
the owner is held the documented way for anything else: a custom field on tickets,
``custom.Owner``, of type "Team member" (a Planhat user's ``_id``;
https://www.planhat.com/developers/api/custom-field).

In: each source's mapping keeps the assignee's e-mail as a hint; just before the ticket is
sent, ``FindOwners`` turns it into the Planhat user with that e-mail (``GET /users``, read
a page a call in the token's budget, kept ``TTL`` seconds per connection, whichever
helpdesk asks). An assignee with no Planhat user leaves the owner unset, and is reported
(a warning naming the ticket), never guessed; the rest of the ticket goes. Back:
``owner_email`` turns a Planhat user's ``_id`` into its e-mail, for the source to find its
agent or admin by.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.planhat.errors import PlanhatError, RateLimitedError
from connectors.planhat.models import MODELS
from connectors.source import (
    NoBudget,
    PrepareContext,
    Prepared,
    PrepareHook,
    TargetRefused,
    TargetUnavailable,
)

log = structlog.get_logger(__name__)

OWNER = "Owner"  # the custom field on Planhat tickets that holds the owner
TTL = 300.0
PAGE = MODELS["users"].page_size  # the most Planhat returns a page: a shorter one is the last
USERS = "helpdesk.planhat_users"  # memo key: the connection's Planhat users, any helpdesk
SELECT = ["_id", "email"]


def assigns(options: Mapping[str, str]) -> bool:
    """Whether the source's options (``<source>.assignees``) share the assignee."""
    return options.get("assignees", "off") == "email"


@dataclass(slots=True)
class PlanhatUsers:
    by_email: dict[str, str] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)  # _id → e-mail
    loaded_at: float = 0.0
    calls: int = 0


def read_users(context: PrepareContext) -> PlanhatUsers:
    users = PlanhatUsers()
    offset = 0
    while True:
        context.take_budget()
        page = context.planhat.list_page("users", limit=PAGE, offset=offset, select=SELECT)
        users.calls += 1
        for user in page:
            email = str(user.get("email") or "").strip().lower()
            if email and user.get("_id"):
                users.by_email.setdefault(email, str(user["_id"]))
                users.emails[str(user["_id"])] = email
        offset += len(page)
        if len(page) < PAGE:
            log.info("helpdesk.planhat_users", users=offset, calls=users.calls,
                     connection=context.connection)  # fmt: skip
            return users


class Directory:
    """The connection's Planhat users, read once and kept ``ttl`` seconds, or read again
    when asked ``fresh`` (an owner it does not know: a user added since; the owner is a
    Planhat user, so once read again it is known)."""

    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._clock = ttl, clock

    def get(self, context: PrepareContext, *, fresh: bool = False) -> tuple[PlanhatUsers, int]:
        """The directory, and how many Planhat calls reading it took (0: from the memo)."""
        cached = context.memo.get(USERS)
        if (
            isinstance(cached, PlanhatUsers)
            and not fresh
            and self._clock() - cached.loaded_at <= self._ttl
        ):
            return cached, 0
        users = read_users(context)
        users.loaded_at = self._clock()
        context.memo[USERS] = users
        return users, users.calls


DIRECTORY = Directory()


class FindOwners:
    """A prepare hook on tickets: the owner from ``source``'s assignee hint ``hint`` (the
    assignee's e-mail; "" when unassigned). Tickets without the hint are left alone."""

    def __init__(self, source: str, hint: str, directory: Directory = DIRECTORY) -> None:
        self.source, self.hint = source, hint
        self._directory = directory

    def __call__(
        self,
        context: PrepareContext,
        fields: Sequence[Mapping[str, Any]],
        records: Sequence[dict[str, Any]],
    ) -> Prepared:
        wanted = [i for i, given in enumerate(fields) if self.hint in given]
        if not wanted:
            return Prepared(records=list(records))
        users, calls = self._directory.get(context)
        out = [dict(record) for record in records]
        settled: dict[int, dict[str, Any]] = {}
        unmatched = []
        for index in wanted:
            email = str(fields[index][self.hint] or "").lower()
            owner = users.by_email.get(email) if email else None
            if email and owner is None:
                unmatched.append(str(out[index].get("sourceId", "")))
            custom = {**(out[index].get("custom") or {}), OWNER: owner}
            out[index]["custom"] = custom
            settled[index] = {"custom": {OWNER: owner}}
        for ticket in unmatched:  # reported, never guessed: the owner stays unset
            log.warning(f"{self.source}.assignee_without_planhat_user", ticket=ticket,
                        connection=context.connection)  # fmt: skip
        return Prepared(records=out, calls=calls, settled=settled)


def owner_email(
    planhat: PrepareContext | None, owner: Any, directory: Directory = DIRECTORY
) -> str:
    """The e-mail of the Planhat user ``owner`` (a user ``_id``), to find the helpdesk's
    agent by. ``TargetRefused`` when there is none, naming the Planhat user (not an
    e-mail); Planhat's 429 is ``NoBudget``, its other errors ``TargetUnavailable``."""
    if planhat is None:
        raise TargetRefused("the owner cannot be matched: this connection has no Planhat token")
    try:
        users, _ = directory.get(planhat)
        email = users.emails.get(str(owner))
        if email is None:  # a user added since the directory was read
            users, _ = directory.get(planhat, fresh=True)
            email = users.emails.get(str(owner))
    except RateLimitedError as error:  # Planhat's budget, not the helpdesk's: wait
        raise NoBudget(error.retry_after) from None
    except PlanhatError as error:
        raise TargetUnavailable(f"could not read Planhat's users: {error}") from None
    if email is None:
        raise TargetRefused(f"the owner {owner} is no Planhat user this connection can read")
    return email


def owner_changed(fields: Mapping[str, Any], options: Mapping[str, str]) -> bool:
    """Whether a write-back's ``fields`` carry an owner to share, with these options."""
    custom = fields.get("custom")
    return assigns(options) and isinstance(custom, Mapping) and OWNER in custom


class InTurn:
    """Hooks run in turn: each on the records the one before gave, the same indices."""

    def __init__(self, *hooks: PrepareHook) -> None:
        self._hooks = hooks

    def __call__(
        self,
        context: PrepareContext,
        fields: Sequence[Mapping[str, Any]],
        records: Sequence[dict[str, Any]],
    ) -> Prepared:
        out, calls = list(records), 0
        refused: dict[int, str] = {}
        waiting: dict[int, str] = {}
        settled: dict[int, dict[str, Any]] = {}
        for hook in self._hooks:
            prepared = hook(context, fields, out)
            out, calls = prepared.records, calls + prepared.calls
            refused.update(prepared.refused)
            waiting.update(prepared.waiting)
            for index, found in prepared.settled.items():
                settled[index] = {**settled.get(index, {}), **found}
        return Prepared(records=out, refused=refused, waiting=waiting, calls=calls,
                        settled=settled)  # fmt: skip
