"""The Zendesk fields custom field rules may read: the ticket, as REST gives it.

``ticket.custom_fields[<id>]`` is the value of the ticket field with that id
(https://developer.zendesk.com/api-reference/ticket-management/tickets/tickets/: the
ticket's ``custom_fields`` is ``[{"id": 360012, "value": "..."}]``). Its type is the ticket
field's (text, integer, decimal, date ``YYYY-MM-DD``, checkbox, drop-down tag,
multi-select list), so any rule type is offered and a value not of it is refused when it
arrives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors.custom_fields.paths import FieldPath

TICKETS = ("tickets",)

FIELD_PATHS = (
    FieldPath("ticket.custom_fields[<id>]", "any", TICKETS),
    FieldPath("ticket.type", "text", TICKETS),
    FieldPath("ticket.priority", "text", TICKETS),
    FieldPath("ticket.group_id", "number", TICKETS),
    FieldPath("ticket.via.channel", "text", TICKETS),
    FieldPath("ticket.tags", "list", TICKETS),
    FieldPath("ticket.created_at", "date", TICKETS),
    FieldPath("ticket.due_at", "date", TICKETS),
)


def field_roots(body: bytes) -> Mapping[str, Any]:
    """The completed event's ticket (the detail ``changes`` maps)."""
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    ticket = document.get("ticket") if isinstance(document, dict) else None
    return {"ticket": ticket} if isinstance(ticket, dict) else {}
