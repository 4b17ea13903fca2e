"""The assignee of a Zendesk ticket ⇄ its Planhat ticket's owner, matched by e-mail, for a
connection with ``zendesk.assignees=email`` (off by default).

Planhat's ticket has no owner field (its documented fields: ``source``, ``sourceId``,
``companyId``, ``email``, ``title``, ``description``, ``url``, ``tags``, ``type``,
``severity``, ``status``, ``history``; https://www.planhat.com/developers/api/ticket), so
the owner is held the documented way for anything else: a custom field on tickets,
``custom.Owner``, of type "Team member" (a Planhat user's ``_id``;
https://www.planhat.com/developers/api/custom-field).

In: the mapping keeps the assignee's e-mail as a hint; just before the ticket is sent,
``FindOwners`` turns it into the Planhat user with that e-mail (``GET /users``, read a page
a call in the token's budget, kept ``TTL`` seconds per connection). An agent with no
Planhat user leaves the owner unset, and is reported (a warning naming the ticket), never
guessed; the rest of the ticket goes. Back: ``zendesk_assignee`` turns a Planhat user's
``_id`` into the Zendesk agent with its e-mail (``GET /api/v2/users/search``, kept per
connection), for the write-back.
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
    TargetRefused,
    TargetUnavailable,
)

log = structlog.get_logger(__name__)

OWNER = "Owner"  # the custom field on Planhat tickets that holds the owner
ASSIGNEE_HINT = "~zendeskAssignee"  # the assignee's e-mail; "" when unassigned (never sent)
TTL = 300.0
PAGE = MODELS["users"].page_size  # the most Planhat returns a page: a shorter one is the last
USERS = "zendesk.planhat_users"  # memo keys
AGENTS = "zendesk.agents"
AGENT_ROLES = ("agent", "admin")
SELECT = ["_id", "email"]


def assigns(options: Mapping[str, str]) -> bool:
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
            log.info("zendesk.planhat_users", users=offset, calls=users.calls)
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
    """A prepare hook on tickets: the owner from the assignee hint (module doc)."""

    def __init__(self, directory: Directory = DIRECTORY) -> None:
        self._directory = directory

    def __call__(
        self,
        context: PrepareContext,
        fields: Sequence[Mapping[str, Any]],
        records: Sequence[dict[str, Any]],
    ) -> Prepared:
        wanted = [i for i, given in enumerate(fields) if ASSIGNEE_HINT in given]
        if not wanted:
            return Prepared(records=list(records))
        users, calls = self._directory.get(context)
        out = [dict(record) for record in records]
        settled: dict[int, dict[str, Any]] = {}
        unmatched = []
        for index in wanted:
            email = str(fields[index][ASSIGNEE_HINT] or "").lower()
            owner = users.by_email.get(email) if email else None
            if email and owner is None:
                unmatched.append(str(out[index].get("sourceId", "")))
            custom = {**(out[index].get("custom") or {}), OWNER: owner}
            out[index]["custom"] = custom
            settled[index] = {"custom": {OWNER: owner}}
        for ticket in unmatched:  # reported, never guessed: the owner stays unset
            log.warning("zendesk.assignee_without_planhat_user", ticket=ticket,
                        connection=context.connection)  # fmt: skip
        return Prepared(records=out, calls=calls, settled=settled)


def zendesk_assignee(
    planhat: PrepareContext | None,
    owner: Any,
    search: Callable[[str], list[Any]],
    directory: Directory = DIRECTORY,
) -> int | None:
    """The Zendesk agent to assign for the Planhat owner ``owner`` (a user ``_id``; None:
    unassigned). ``TargetRefused`` when there is none, naming the Planhat user."""
    if owner in (None, ""):
        return None
    if planhat is None:
        raise TargetRefused("the owner cannot be matched: this connection has no Planhat token")
    try:
        users, _ = directory.get(planhat)
        email = users.emails.get(str(owner))
        if email is None:  # a user added since the directory was read
            users, _ = directory.get(planhat, fresh=True)
            email = users.emails.get(str(owner))
    except RateLimitedError as error:  # Planhat's budget, not Zendesk's: wait, no attempt
        raise NoBudget(error.retry_after) from None
    except PlanhatError as error:
        raise TargetUnavailable(f"could not read Planhat's users: {error}") from None
    if email is None:
        raise TargetRefused(f"the owner {owner} is no Planhat user this connection can read")
    agents: dict[str, int] = planhat.memo.setdefault(AGENTS, {})
    if email not in agents:
        for user in search(email):
            role = user.get("role")
            if str(user.get("email") or "").lower() == email and role in AGENT_ROLES:
                agents[email] = int(user["id"])
                break
    if email not in agents:
        raise TargetRefused(
            f"the owner {owner} has no Zendesk agent with the same e-mail; add the agent in "
            "Zendesk (or hand the ticket to a Planhat user who is one), then retry"
        )
    return agents[email]
