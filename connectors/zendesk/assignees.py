"""The assignee of a Zendesk ticket ⇄ its Planhat ticket's owner (``custom.Owner``),
matched by e-mail, for a connection with ``zendesk.assignees=email`` (off by default).

What every helpdesk shares (the owner field, the Planhat users directory, the hook that
finds the owner) is ``connectors/helpdesk_owners.py``. Here: in, the mapping keeps the
assignee's e-mail (sideloaded with the ticket) as ``ASSIGNEE_HINT``, and ``FindOwners``
turns it into the owner. Back: ``zendesk_assignee`` turns a Planhat user's ``_id`` into
the Zendesk agent with its e-mail (``GET /api/v2/users/search``, kept per connection), for
the write-back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors import helpdesk_owners
from connectors.helpdesk_owners import (
    DIRECTORY,
    OWNER,
    Directory,
    PlanhatUsers,
    assigns,
    owner_email,
)
from connectors.source import PrepareContext, TargetRefused

__all__ = ["ASSIGNEE_HINT", "OWNER", "Directory", "FindOwners", "PlanhatUsers", "assigns",
           "zendesk_assignee"]  # fmt: skip

ASSIGNEE_HINT = "~zendeskAssignee"  # the assignee's e-mail; "" when unassigned (never sent)
AGENTS = "zendesk.agents"  # memo key
AGENT_ROLES = ("agent", "admin")


class FindOwners(helpdesk_owners.FindOwners):
    """A prepare hook on tickets: the owner from the Zendesk assignee hint."""

    def __init__(self, directory: Directory = DIRECTORY) -> None:
        super().__init__("zendesk", ASSIGNEE_HINT, directory)


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
    email = owner_email(planhat, owner, directory)
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
