"""The Intercom stand-in's data: tickets, ticket states and types, contacts, companies and
admins, in memory, shaped as Intercom's REST API 2.14 gives them (developers.intercom.com).

Kept as Intercom does: a ticket's ``id`` (the API's) differs from its ``ticket_id`` (the
inbox's); ``ticket_state`` is an object with its ``category``; ``contacts`` are references
(``type``, ``id``, ``external_id``); ``updated_at`` (Unix seconds) moves on every change;
every change leaves a ticket part whose ``author`` made it, with ``app_package_code`` when
it came through the API (the 2.14 ticket part). Assumed: one ticket's ``updated_at`` never
repeats (Intercom's has whole seconds; two changes in one second here take the next).
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

Doc = dict[str, Any]
TICKET_TYPE = {"type": "ticket_type", "id": "2979330", "name": "Tickets", "category": "Customer"}
STATES = (  # (id, category, label, archived): the defaults of a new workspace, and one more
    ("4517893", "submitted", "Submitted", False),
    ("4517894", "in_progress", "In progress", False),
    ("4517897", "in_progress", "With Dev Team", False),
    ("4517895", "waiting_on_customer", "Waiting on customer", False),
    ("4517896", "resolved", "Resolved", False),
    ("4517890", "resolved", "Old resolved", True),
)


class Invalid(ValueError):
    """A write Intercom refuses (400/422 ``parameter_invalid``); the message says why."""


class IntercomStore:
    def __init__(self, app_id: str = "sandbox", clock: Callable[[], float] = time.time) -> None:
        self.app_id = app_id
        self.clock = clock
        self.lock = threading.RLock()
        self.tickets: dict[str, Doc] = {}
        self.contacts: dict[str, Doc] = {}
        self.companies: dict[str, Doc] = {}
        self.admins: dict[str, Doc] = {}
        self._admin_ids = itertools.count(991267001)
        self.add_admin("sam@helpdesk.example", "Sam Agent")
        self.states: list[Doc] = [
            {"type": "ticket_state", "id": sid, "category": category, "internal_label": label,
             "external_label": label, "archived": archived,
             "ticket_types": {"type": "list", "data": [dict(TICKET_TYPE)]}}
            for sid, category, label, archived in STATES
        ]  # fmt: skip
        self._ids = itertools.count(215472629311235)
        self._inbox = itertools.count(66040342)

    def add_admin(self, email: str, name: str = "Agent") -> Doc:
        """A teammate, as the 2.14 admin model has one (admins are made in Intercom's app,
        never through the API: ``POST /_sandbox/admins`` stands in for that)."""
        with self.lock:
            admin_id = str(next(self._admin_ids))
            self.admins[admin_id] = {
                "type": "admin", "id": admin_id, "name": name, "email": email,
                "job_title": "", "away_mode_enabled": False, "away_mode_reassign": False,
                "has_inbox_seat": True, "team_ids": [], "avatar": {"image_url": None},
                "email_verified": True,
            }  # fmt: skip
            return copy.deepcopy(self.admins[admin_id])

    def _now(self, ticket: Doc | None = None) -> int:
        now = int(self.clock())
        return max(now, int(ticket["updated_at"]) + 1) if ticket is not None else now

    def state(self, state_id: str) -> Doc:
        for state in self.states:
            if state["id"] == str(state_id):
                return state
        raise Invalid(f"ticket_state_id {state_id} is not a state of this workspace")

    def create_contact(self, given: Mapping[str, Any]) -> Doc:
        with self.lock:
            contact_id = f"{next(self._ids):x}"
            contact = {"type": "contact", "id": contact_id, "role": given.get("role", "user"),
                       "email": given.get("email"), "external_id": given.get("external_id"),
                       "name": given.get("name"), "created_at": self._now(),
                       "updated_at": self._now(), "company_ids": []}  # fmt: skip
            self.contacts[contact_id] = contact
            return self.contact(contact_id)

    def contact(self, contact_id: str) -> Doc:
        contact = {k: v for k, v in self.contacts[contact_id].items() if k != "company_ids"}
        return copy.deepcopy(contact)

    def upsert_company(self, given: Mapping[str, Any]) -> Doc:
        """``POST /companies``: created, or updated when its ``company_id`` exists."""
        with self.lock:
            key = given.get("company_id")
            found = next((c for c in self.companies.values() if key and c["company_id"] == key),
                         None)  # fmt: skip
            if found is None:
                company_id = f"{next(self._ids):x}"
                found = {"type": "company", "id": company_id, "company_id": key,
                         "name": given.get("name"), "created_at": self._now()}  # fmt: skip
                self.companies[company_id] = found
            found.update({k: given[k] for k in ("name",) if k in given})
            return copy.deepcopy(found)

    def attach(self, contact_id: str, company_id: str) -> Doc:
        with self.lock:
            company = self.companies[company_id]
            held = self.contacts[contact_id]["company_ids"]
            if company_id not in held:
                held.append(company_id)
            return copy.deepcopy(company)

    def companies_of(self, contact_id: str) -> list[Doc]:
        with self.lock:
            ids = self.contacts[contact_id]["company_ids"]
            return [copy.deepcopy(self.companies[i]) for i in ids]

    def _contact_refs(self, given: Any) -> list[Doc]:
        refs = []
        for item in given if isinstance(given, list) else []:
            if not isinstance(item, dict):
                raise Invalid("contacts: each is {id} or {email}")
            if item.get("id") in self.contacts:
                contact = self.contacts[item["id"]]
            elif item.get("email"):
                contact = self._by_email(str(item["email"]))
            else:
                raise Invalid("contacts: no such contact")
            refs.append({"type": "contact", "id": contact["id"],
                         "external_id": contact.get("external_id")})  # fmt: skip
        if not refs:
            raise Invalid("contacts: a ticket needs a contact")
        return refs

    def _by_email(self, email: str) -> Doc:
        for contact in self.contacts.values():
            if contact["email"] == email:
                return contact
        return self.contacts[self.create_contact({"email": email})["id"]]

    def create_ticket(self, given: Mapping[str, Any], *, author: Doc) -> Doc:
        with self.lock:
            if str(given.get("ticket_type_id", TICKET_TYPE["id"])) != TICKET_TYPE["id"]:
                raise Invalid("ticket_type_id is not a ticket type of this workspace")
            attributes = dict(given.get("ticket_attributes") or {})
            first = next(s for s in self.states if s["category"] == "submitted")
            state = self.state(given["ticket_state_id"]) if given.get("ticket_state_id") else first
            now = self._now()
            ticket_id = str(next(self._ids))
            ticket = {
                "type": "ticket", "id": ticket_id, "ticket_id": str(next(self._inbox)),
                "category": "Customer",
                "ticket_attributes": {"_default_title_": attributes.pop("_default_title_", None),
                                      "_default_description_":
                                          attributes.pop("_default_description_", None),
                                      **attributes},
                "ticket_state": _state_ref(state), "ticket_type": dict(TICKET_TYPE),
                "contacts": {"type": "contact.list",
                             "contacts": self._contact_refs(given.get("contacts"))},
                "admin_assignee_id": "0", "team_assignee_id": "0",
                "created_at": now, "updated_at": now,
                "ticket_parts": {"type": "ticket_part.list", "ticket_parts": [],
                                 "total_count": 0},
                "open": state["category"] != "resolved", "snoozed_until": None,
                "linked_objects": {"type": "list", "data": [], "total_count": 0,
                                   "has_more": False},
                "is_shared": True, "company_id": given.get("company_id"),
            }  # fmt: skip
            self._part(ticket, "ticket_created", author, now)
            self.tickets[ticket_id] = ticket
            return copy.deepcopy(ticket)

    def update_ticket(
        self, ticket_id: str, given: Mapping[str, Any], *, author: Doc
    ) -> tuple[Doc, list[str]]:
        """The ticket after the update, and the topics it fires (none: nothing changed)."""
        with self.lock:
            ticket = self.tickets[ticket_id]
            topics: list[str] = []
            now = self._now(ticket)
            if given.get("ticket_state_id") is not None:
                state = self.state(str(given["ticket_state_id"]))
                if state["archived"]:
                    raise Invalid("ticket_state_id names an archived state")
                was = ticket["ticket_state"]
                if state["id"] != was["id"]:
                    ticket["ticket_state"] = _state_ref(state)
                    ticket["open"] = state["category"] != "resolved"
                    self._part(ticket, "ticket_state_updated_by_admin", author, now,
                               ticket_state=state["category"],
                               previous_ticket_state=was["category"])  # fmt: skip
                    topics.append("ticket.state.updated")
                    if state["category"] == "resolved":
                        topics.append("ticket.closed")
            attributes = given.get("ticket_attributes")
            if isinstance(attributes, dict):
                held = ticket["ticket_attributes"]
                changed = {k: v for k, v in attributes.items() if held.get(k) != v}
                if changed:
                    held.update(changed)
                    self._part(ticket, "ticket_attribute_updated_by_admin", author, now)
                    topics.append("ticket.attribute.updated")
            assignee = given.get("admin_assignee_id")
            if assignee is not None and str(assignee) != ticket["admin_assignee_id"]:
                if str(assignee) != "0" and str(assignee) not in self.admins:
                    raise Invalid("admin_assignee_id is not an admin of this workspace")
                ticket["admin_assignee_id"] = str(assignee)
                self._part(ticket, "assignment", author, now)
                topics.append("ticket.admin.assigned")
            if topics:
                ticket["updated_at"] = now
            return copy.deepcopy(ticket), topics

    def _part(self, ticket: Doc, kind: str, author: Doc, at: int, **more: Any) -> None:
        part = {"type": "ticket_part", "id": str(next(self._ids)), "part_type": kind, **more,
                "created_at": at, "updated_at": at,
                "author": {k: author[k] for k in ("id", "type", "name", "email")},
                "attachments": [], "redacted": False}  # fmt: skip
        if author.get("app_package_code"):  # only "if this part was created via API"
            part["app_package_code"] = author["app_package_code"]
        parts = ticket["ticket_parts"]
        parts["ticket_parts"].append(part)
        parts["total_count"] = len(parts["ticket_parts"])

    def ordered(self) -> list[Doc]:
        with self.lock:
            return copy.deepcopy(list(self.tickets.values()))


def _state_ref(state: Mapping[str, Any]) -> Doc:
    return {k: state[k] for k in ("type", "id", "category", "internal_label", "external_label")}
