"""An Intercom ticket's admin assignee ⇄ its Planhat ticket's owner (``custom.Owner``),
matched by e-mail, for a connection with ``intercom.assignees=email`` (off by default).

What every helpdesk shares (the owner field, the Planhat users directory, the hook that
finds the owner, ``InTurn``) is ``connectors/helpdesk_owners.py``. Intercom's part: its
admins (teammates), which a ticket names only by id (``admin_assignee_id``; ``"0"``:
unassigned). ``ADMINS`` keeps each workspace's admins (``GET /admins``, 2.14 listAdmins:
``{"type": "admin.list", "admins": [{"id", "email", …}]}``, one answer for the whole
workspace) ``TTL`` seconds. In: completing a ticket (``api.complete``) adds its assignee's
e-mail (an id not in the list: ``GET /admins/{id}``, 2.14 retrieveAdmin, once), which the
mapping keeps as ``ASSIGNEE_HINT`` for ``FindOwners``. Back: ``admin_for`` turns a Planhat
user's ``_id`` into the admin with its e-mail (read again once when none has it: a
teammate added since); none is a dead letter naming the owner's ``_id``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors import helpdesk_owners
from connectors.helpdesk_owners import DIRECTORY, Directory, owner_email
from connectors.source import PrepareContext, TargetRefused

log = structlog.get_logger(__name__)

ASSIGNEE_HINT = "~intercomAssignee"  # the assignee's e-mail; "" when unassigned (never sent)
UNASSIGNED = "0"  # Intercom's admin_assignee_id of an unassigned ticket, and to unassign
TTL = 300.0
Read = Callable[[str], Any]  # GET an API path → its JSON; None for a 404


def assignee_id(ticket: Any) -> str | None:
    """The admin a ticket is assigned to; None when unassigned."""
    given = ticket.get("admin_assignee_id") if isinstance(ticket, dict) else None
    text = str(given if given is not None else "").strip()
    return None if text in ("", UNASSIGNED) else text


def workspace(base: str, authorization: str) -> str:
    """A workspace's key: the API host and the token (hashed: no secret kept as a key)."""
    return f"{base.rstrip('/')}#{hashlib.sha256(authorization.encode()).hexdigest()[:16]}"


@dataclass(slots=True)
class Workspace:
    emails: dict[str, str | None] = field(default_factory=dict)  # admin id → e-mail
    by_email: dict[str, str] = field(default_factory=dict)
    loaded_at: float = 0.0
    unreadable: bool = False  # the token may not read admins (kept as long, not asked)


class Admins:
    """Each workspace's admins, read once (``GET /admins``) and kept ``ttl`` seconds."""

    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._clock = ttl, clock
        self._lock = threading.Lock()
        self._kept: dict[str, Workspace] = {}

    def _get(self, key: str, read: Read, *, fresh: bool = False) -> Workspace:
        with self._lock:
            kept = self._kept.get(key)
        if kept and not fresh and self._clock() - kept.loaded_at <= self._ttl:
            return kept
        listed = read("/admins") or {}
        found = Workspace(loaded_at=self._clock())
        for admin in listed.get("admins") or []:
            if isinstance(admin, dict) and admin.get("type", "admin") == "admin":
                found.emails[str(admin["id"])] = _email(admin)
        found.by_email = {email: i for i, email in sorted(found.emails.items()) if email}
        log.info("intercom.admins", admins=len(found.emails))
        with self._lock:
            self._kept[key] = found
        return found

    def email_of(self, key: str, read: Read, admin_id: str) -> str | None:
        """The admin's e-mail (lower case); None when it has none or is none."""
        kept = self._get(key, read)
        if admin_id not in kept.emails and not kept.unreadable:  # a teammate added since
            admin = read(f"/admins/{admin_id}")
            with self._lock:
                kept.emails[admin_id] = _email(admin) if isinstance(admin, dict) else None
        return kept.emails.get(admin_id)

    def unreadable(self, key: str) -> None:
        """The token may not read this workspace's admins: not asked again for ``ttl``."""
        with self._lock:
            self._kept[key] = Workspace(loaded_at=self._clock(), unreadable=True)

    def id_of(self, key: str, read: Read, email: str) -> str | None:
        """The admin with this e-mail; the list is read again once when none has it."""
        found = self._get(key, read).by_email.get(email)
        if found is None:
            found = self._get(key, read, fresh=True).by_email.get(email)
        return found

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


def _email(admin: dict[str, Any]) -> str | None:
    return str(admin.get("email") or "").strip().lower() or None


ADMINS = Admins()


class FindOwners(helpdesk_owners.FindOwners):
    """A prepare hook on tickets: the owner from the Intercom assignee hint."""

    def __init__(self, directory: Directory = DIRECTORY) -> None:
        super().__init__("intercom", ASSIGNEE_HINT, directory)


def admin_for(
    planhat: PrepareContext | None,
    owner: Any,
    key: str,
    read: Read,
    admins: Admins = ADMINS,
    directory: Directory = DIRECTORY,
) -> str:
    """The admin to assign for the Planhat owner ``owner`` (a user ``_id``; None or "":
    unassign, ``"0"``). ``TargetRefused`` when there is none, naming the Planhat user."""
    if owner in (None, ""):
        return UNASSIGNED
    email = owner_email(planhat, owner, directory)
    found = admins.id_of(key, read, email)
    if found is None:
        raise TargetRefused(
            f"the owner {owner} has no Intercom admin with the same e-mail; add the teammate "
            "in Intercom (or hand the ticket to a Planhat user who is one), then retry"
        )
    return found
