"""The Zendesk stand-in's data: tickets, users, organizations and each ticket's audits,
in memory, shaped as Zendesk's REST API v2 gives them (``developer.zendesk.com``).

What it keeps as Zendesk does: ``updated_at`` moves on every change that makes an audit,
``generated_timestamp`` on every change; a write carries ``metadata`` into its audit's
``metadata.custom``; a deleted ticket is gone from ``GET`` (404) and appears in the
incremental export with status ``deleted``. Assumed: ``updated_at`` of one ticket never
repeats (Zendesk's has whole seconds; two changes in one second here take the next).
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Doc = dict[str, Any]
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("urgent", "high", "normal", "low")
WRITABLE = ("status", "priority", "subject", "tags", "assignee_id", "organization_id",
            "external_id", "type")  # fmt: skip


class Invalid(ValueError):
    """A write Zendesk answers 422 (RecordInvalid); the message says which field."""


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_of(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


class ZendeskStore:
    def __init__(
        self, subdomain: str, clock: Callable[[], float] = time.time, first_id: int = 1
    ) -> None:
        self.subdomain = subdomain
        self.clock = clock
        self.lock = threading.RLock()
        self.tickets: dict[int, Doc] = {}
        self.deleted: dict[int, Doc] = {}
        self.users: dict[int, Doc] = {}
        self.organizations: dict[int, Doc] = {}
        self.audits: dict[int, list[Doc]] = {}
        self._ids = itertools.count(first_id)

    def _now(self, ticket: Doc | None = None) -> tuple[str, int]:
        now = int(self.clock())
        if ticket is not None:  # never the same updated_at twice (module doc)
            now = max(now, seconds_of(ticket["updated_at"]) + 1)
        return iso(now), now

    def create_user(self, given: Mapping[str, Any]) -> Doc:
        with self.lock:
            user_id = next(self._ids)
            user = {"id": user_id, "name": given.get("name") or f"User {user_id}",
                    "email": given.get("email"), "role": given.get("role", "end-user"),
                    "organization_id": given.get("organization_id"),
                    "created_at": iso(self.clock()), "updated_at": iso(self.clock())}  # fmt: skip
            self.users[user_id] = user
            return dict(user)

    def create_organization(self, given: Mapping[str, Any]) -> Doc:
        with self.lock:
            org_id = next(self._ids)
            org = {"id": org_id, "name": given.get("name") or f"Org {org_id}",
                   "external_id": given.get("external_id"),
                   "domain_names": list(given.get("domain_names") or []),
                   "created_at": iso(self.clock())}  # fmt: skip
            self.organizations[org_id] = org
            return dict(org)

    def _requester(self, given: Mapping[str, Any]) -> int | None:
        if given.get("requester_id"):
            return int(given["requester_id"])
        requester = given.get("requester")
        if isinstance(requester, dict):
            email = requester.get("email")
            for user in self.users.values():
                if email and user.get("email") == email:
                    return int(user["id"])
            return int(self.create_user(requester)["id"])
        return None

    def create_ticket(self, given: Mapping[str, Any], *, via: str, author: int | None) -> Doc:
        with self.lock:
            _check(given)
            ticket_id = next(self._ids)
            stamp, now = self._now()
            comment = given.get("comment") or {}
            requester = self._requester(given)
            org = given.get("organization_id")
            if org is None and requester is not None:
                org = self.users[requester].get("organization_id")
            ticket = {
                "id": ticket_id,
                "url": f"https://{self.subdomain}.zendesk.com/api/v2/tickets/{ticket_id}.json",
                "external_id": given.get("external_id"),
                "type": given.get("type"),
                "subject": given.get("subject"),
                "raw_subject": given.get("subject"),
                "description": comment.get("body") or given.get("description"),
                "priority": given.get("priority"),
                "status": given.get("status") or "new",
                "requester_id": requester,
                "submitter_id": requester,
                "assignee_id": given.get("assignee_id"),
                "organization_id": org,
                "tags": sorted(set(given.get("tags") or [])),
                "via": {"channel": via},
                "created_at": stamp,
                "updated_at": stamp,
                "generated_timestamp": now,
            }
            self.tickets[ticket_id] = ticket
            events = [{"type": "Create", "field_name": name, "value": ticket[name]}
                      for name in ("status", "priority", "subject", "tags")]  # fmt: skip
            self._audit(ticket, events, given, via=via, author=author)
            return copy.deepcopy(ticket)

    def update_ticket(
        self, ticket_id: int, given: Mapping[str, Any], *, via: str, author: int | None
    ) -> tuple[Doc, Doc, list[Doc]]:
        """The ticket after the update, its audit, and the changes (field, was, is)."""
        with self.lock:
            ticket = self.tickets[ticket_id]
            if ticket["status"] == "closed":
                raise Invalid("Status: closed prevents ticket update")
            _check(given)
            changes = []
            for name in WRITABLE:
                if name not in given:
                    continue
                value = given[name]
                if name == "tags":
                    value = sorted(set(value or []))
                if ticket.get(name) != value:
                    was = ticket.get(name)
                    changes.append({"type": "Change", "field_name": name,
                                    "value": value, "previous_value": was})  # fmt: skip
            comment = given.get("comment")
            if isinstance(comment, dict) and comment.get("body"):
                changes.append({"type": "Comment", "body": comment["body"],
                                "public": comment.get("public", True)})  # fmt: skip
            if not changes:  # no ticket event: updated_at stays (the tickets API page)
                ticket["generated_timestamp"] = int(self.clock())
                return copy.deepcopy(ticket), {}, []
            stamp, _ = self._now(ticket)
            for change in changes:
                if change["type"] == "Change":
                    ticket[change["field_name"]] = change["value"]
            ticket["updated_at"] = stamp
            ticket["generated_timestamp"] = seconds_of(stamp)
            audit = self._audit(ticket, changes, given, via=via, author=author)
            return copy.deepcopy(ticket), audit, changes

    def delete_ticket(self, ticket_id: int) -> Doc:
        with self.lock:
            ticket = self.tickets.pop(ticket_id)
            stamp, _ = self._now(ticket)
            ticket.update(status="deleted", updated_at=stamp,
                          generated_timestamp=seconds_of(stamp))  # fmt: skip
            self.deleted[ticket_id] = ticket
            return copy.deepcopy(ticket)

    def _audit(
        self, ticket: Doc, events: list[Doc], given: Mapping[str, Any], *, via: str,
        author: int | None,
    ) -> Doc:  # fmt: skip
        custom = given.get("metadata") if isinstance(given.get("metadata"), dict) else {}
        audit = {
            "id": next(self._ids),
            "ticket_id": ticket["id"],
            "created_at": ticket["updated_at"],
            "author_id": author,
            "via": {"channel": via},
            "metadata": {"system": {}, "custom": dict(custom or {})},
            "events": [dict(event, id=next(self._ids)) for event in events],
        }
        self.audits.setdefault(ticket["id"], []).append(audit)
        return copy.deepcopy(audit)

    def export(self, after: tuple[int, int], until: int, limit: int) -> tuple[list[Doc], bool]:
        """Tickets (deleted ones too) after ``after`` = (generated_timestamp, id), up to
        ``until``, in that order: a page, and whether nothing more follows it."""
        with self.lock:
            every = [*self.tickets.values(), *self.deleted.values()]
            order = sorted(
                (t for t in every if after < (t["generated_timestamp"], t["id"])
                 and t["generated_timestamp"] <= until),
                key=lambda t: (t["generated_timestamp"], t["id"]),
            )  # fmt: skip
            return copy.deepcopy(order[:limit]), len(order) <= limit

    def sideloads(self, tickets: list[Doc], include: set[str]) -> Doc:
        with self.lock:
            loaded: Doc = {}
            if "users" in include:
                names = ("requester_id", "submitter_id", "assignee_id")
                ids = {t[n] for t in tickets for n in names if t.get(n) is not None}
                loaded["users"] = [dict(self.users[i]) for i in sorted(ids) if i in self.users]
            if "organizations" in include:
                orgs = self.organizations
                ids = {t["organization_id"] for t in tickets if t.get("organization_id")}
                loaded["organizations"] = [dict(orgs[i]) for i in sorted(ids) if i in orgs]
            return loaded


def _check(given: Mapping[str, Any]) -> None:
    status, priority = given.get("status"), given.get("priority")
    if status is not None and status not in STATUSES:
        raise Invalid(f"Status: {status} is not a valid status")
    if priority is not None and priority not in PRIORITIES:
        raise Invalid(f"Priority: {priority} is not a valid priority")
    tags = given.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise Invalid("Tags: must be a list of strings")
