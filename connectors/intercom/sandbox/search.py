"""The stand-in's ``POST /tickets/search``: Intercom's query language over its tickets.

As searchTickets documents it (https://developers.intercom.com/docs/references/2.14/
rest-api/api.intercom.io/tickets/searchtickets): a query is one filter ``{field, operator,
value}`` or a group ``{operator: AND|OR, value: [...]}``, nested at most 2 deep, at most
15 filters a group; operators ``= != IN NIN > < ~ !~ ^ $``, where ``>`` and ``<`` include
the value itself ("greater or equal"); pages of ``per_page`` (default 20, at most 150)
followed with ``pagination.starting_after``, an opaque cursor. Results come in the order
the tickets were created, not by ``updated_at``: a reader must not rely on an order.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

Doc = dict[str, Any]
OPERATORS = ("=", "!=", "IN", "NIN", ">", "<", "~", "!~", "^", "$")
MAX_DEPTH = 2
MAX_GROUP = 15
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 150


class BadQuery(ValueError):
    """A query Intercom refuses (400, ``parameter_invalid``); the message says why."""


def _value(ticket: Mapping[str, Any], field: str) -> Any:
    attributes = ticket.get("ticket_attributes") or {}
    state = ticket.get("ticket_state") or {}
    if field == "title":
        return attributes.get("_default_title_")
    if field == "description":
        return attributes.get("_default_description_")
    if field == "state":
        return state.get("category")
    if field == "ticket_state_id":
        return state.get("id")
    if field == "ticket_type_id":
        return (ticket.get("ticket_type") or {}).get("id")
    if field == "contact_ids":
        return [c["id"] for c in (ticket.get("contacts") or {}).get("contacts") or []]
    if field.startswith("ticket_attribute."):
        return attributes.get(field.partition(".")[2])
    if field in ("id", "created_at", "updated_at", "open", "category", "admin_assignee_id",
                 "team_assignee_id", "snoozed_until", "company_id"):  # fmt: skip
        return ticket.get(field)
    raise BadQuery(f"{field} is not a searchable field")


def _compare(have: Any, operator: str, want: Any) -> bool:
    if isinstance(have, list):  # a field with many values matches when any does
        if operator in ("!=", "NIN", "!~"):
            return all(_compare(one, operator, want) for one in have)
        return any(_compare(one, operator, want) for one in have)
    tests: dict[str, Callable[[], bool]] = {
        "=": lambda: have == want or str(have) == str(want),
        "!=": lambda: not (have == want or str(have) == str(want)),
        "IN": lambda: str(have) in {str(w) for w in want},
        "NIN": lambda: str(have) not in {str(w) for w in want},
        ">": lambda: have is not None and float(have) >= float(want),
        "<": lambda: have is not None and float(have) <= float(want),
        "~": lambda: str(want).lower() in str(have or "").lower(),
        "!~": lambda: str(want).lower() not in str(have or "").lower(),
        "^": lambda: str(have or "").lower().startswith(str(want).lower()),
        "$": lambda: str(have or "").lower().endswith(str(want).lower()),
    }
    try:
        return tests[operator]()
    except (TypeError, ValueError):
        raise BadQuery(f"the value of a {operator!r} filter is not of the field's type") from None


def matcher(query: Any, depth: int = 0) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over tickets for ``query``; ``BadQuery`` for what Intercom refuses."""
    if not isinstance(query, dict) or "operator" not in query:
        raise BadQuery("a query is {field, operator, value} or {operator: AND|OR, value: [...]}")
    operator = query["operator"]
    if operator in ("AND", "OR"):
        parts = query.get("value")
        if depth >= MAX_DEPTH or not isinstance(parts, list) or not parts:
            raise BadQuery("a group holds a list of filters, nested at most 2 deep")
        if len(parts) > MAX_GROUP:
            raise BadQuery(f"at most {MAX_GROUP} filters a group")
        inner = [matcher(part, depth + 1) for part in parts]
        if operator == "AND":
            return lambda ticket: all(test(ticket) for test in inner)
        return lambda ticket: any(test(ticket) for test in inner)
    if operator not in OPERATORS or not isinstance(query.get("field"), str):
        raise BadQuery(f"{operator!r} is not an operator")
    field, want = query["field"], query.get("value")
    if operator in ("IN", "NIN") and not isinstance(want, list):
        raise BadQuery(f"{operator} takes a list")
    _value({}, field)  # an unknown field is refused even when no ticket is searched
    return lambda ticket: _compare(_value(ticket, field), operator, want)


def cursor(ticket_id: str) -> str:
    return base64.urlsafe_b64encode(f"after:{ticket_id}".encode()).decode()


def _after(value: str) -> str:
    try:
        text = base64.urlsafe_b64decode(value.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise BadQuery("starting_after is not a cursor this search gave") from None
    if not text.startswith("after:"):
        raise BadQuery("starting_after is not a cursor this search gave")
    return text[6:]


def search(tickets: list[Doc], body: Any, page_size: int | None = None) -> Doc:
    """The answer to a search over ``tickets`` (in creation order) for ``body``;
    ``page_size``: pages no larger than that, whatever was asked (a test's knob)."""
    if not isinstance(body, dict):
        raise BadQuery("the body must be {query, pagination}")
    test = matcher(body.get("query"))
    paging = body.get("pagination") or {}
    per_page = int(paging.get("per_page") or DEFAULT_PER_PAGE)
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise BadQuery(f"per_page must be 1 to {MAX_PER_PAGE}")
    per_page = min(per_page, page_size or per_page)
    found = [t for t in tickets if test(t)]
    start = 0
    if paging.get("starting_after"):
        after = _after(str(paging["starting_after"]))
        ids = [str(t["id"]) for t in found]
        # a ticket that no longer matches: go on after the next one created after it
        start = (
            ids.index(after) + 1 if after in ids else sum(1 for i in ids if int(i) <= int(after))
        )
    page = found[start : start + per_page]
    total_pages = max(1, -(-len(found) // per_page))
    pages: Doc = {"type": "pages", "page": start // per_page + 1, "per_page": per_page,
                  "total_pages": total_pages}  # fmt: skip
    if start + per_page < len(found):
        pages["next"] = {"per_page": per_page, "starting_after": cursor(str(page[-1]["id"]))}
    return {"type": "ticket.list", "tickets": page, "total_count": len(found), "pages": pages}
