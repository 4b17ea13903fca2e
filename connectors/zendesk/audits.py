"""A ticket's audits, read once when an event webhook names it, for two things:

- ``history``: Planhat's ticket ``history`` is the "array of objects containing the status
  history" (``[{status, time}]``, docs.planhat.com, Tickets). Zendesk keeps each status
  change as an audit event (``Create`` or ``Change`` with ``field_name: "status"``) whose
  audit has the time (``GET /api/v2/tickets/{id}/audits.json``,
  https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_audits/). The
  incremental export carries no audits (its sideloads exclude ``last_audits``), and
  reading them for every exported ticket would cost one call per ticket: an exported
  ticket's change leaves ``history`` as last sent, and the next event that can change the
  status (``AUDITED_KINDS``) brings it up to date. One read, not one per status change.
- our echo: our writes carry ``metadata`` (``write_back.ORIGIN``), which Zendesk keeps in
  the audit's ``metadata.custom``; when the ticket's last audit is ours (nothing changed
  after it), the event is our own write coming back.

What is kept in the event's detail is the summary, not the audits (their comments and
e-mails): ``status_changes`` (Zendesk statuses with times, oldest first) and ``our_write``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from connectors.zendesk import api
from connectors.zendesk.write_back import ours

# Event kinds (``zen:event-type:ticket.<kind>``) after which the audits are read: those a
# status can change with, and those our write-back makes (status, priority, assignee).
AUDITED_KINDS = frozenset(
    {"created", "status_changed", "priority_changed", "agent_assignment_changed"}
)
MAX_PAGES = 10  # 100 audits a page (Zendesk's limit): 1,000 audits of one ticket at most


def read(http: httpx.Client, ticket_id: int) -> list[dict[str, Any]]:
    """The ticket's audits, oldest first (Zendesk's order), following ``next_page``."""
    found: list[dict[str, Any]] = []
    url: str | None = f"/api/v2/tickets/{ticket_id}/audits.json"
    for _ in range(MAX_PAGES):
        if url is None:
            break
        answer = http.get(url)
        api.raise_for_status(answer)
        page = answer.json()
        found.extend(a for a in page.get("audits") or [] if isinstance(a, dict))
        url = page.get("next_page")
    return found


def status_changes(audits: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Each status the ticket took, with its audit's time, oldest first."""
    changes: list[dict[str, str]] = []
    for audit in audits:
        for event in audit.get("events") or []:
            if event.get("field_name") == "status" and event.get("type") in ("Create", "Change"):
                changes.append({"status": str(event.get("value")), "time": audit["created_at"]})
    return changes


def ours_last(audits: list[dict[str, Any]], ticket: Mapping[str, Any]) -> bool:
    """Whether the ticket's last change is our write (its audit carries our origin, and the
    ticket was not updated after it)."""
    if not audits:
        return False
    last = audits[-1]
    return ours(last) and last.get("created_at") == ticket.get("updated_at")


def summary(audits: list[dict[str, Any]], ticket: Mapping[str, Any]) -> dict[str, Any]:
    """What an event's detail keeps of the audits (the module's doc)."""
    return {"status_changes": status_changes(audits), "our_write": ours_last(audits, ticket)}
