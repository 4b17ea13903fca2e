"""Re-reading Planhat records a hint names, and the detail kept with the hint's event.

A hint (a Planhat Automation's webhook) only says which record changed; what it changed
to is read from Planhat itself. Reads are batched per model: a few records are read one
``GET /<model>/<_id>`` each; more, or a model without a single-record GET (tickets), are
found in the list newest first (``sort=-updatedAt``), where records that just changed are
on the first page. Every call first takes its turn in the token's budget (``take``).

The detail, as kept with the event and mapped by the source:

    {"model": "tasks", "_id": "…", "record": {…}}      the record as read
    {"model": "tasks", "_id": "…", "record": null}     gone: deleted in Planhat
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

from connectors.planhat.client import PlanhatClient
from connectors.planhat.errors import NotFoundError, PlanhatError
from connectors.planhat.models import Operation, model_spec

# From this many records of one model in a batch, the list is read first (one call for up
# to a page of them) instead of one GET each.
LIST_FROM = 3
# Pages of the list read at most when the rest can be read one by one.
LIST_PAGES = 3

Record = dict[str, Any]


def detail(model: str, planhat_id: str, record: Record | None) -> bytes:
    return json.dumps({"model": model, "_id": planhat_id, "record": record}).encode()


def read_detail(body: bytes) -> tuple[str, str, Record | None]:
    """(model, _id, the record or None when it is gone); ``ValueError`` if malformed."""
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("a Planhat detail is a JSON object")
    model, planhat_id, record = document.get("model"), document.get("_id"), document.get("record")
    if not isinstance(model, str) or not isinstance(planhat_id, str):
        raise ValueError("a Planhat detail names a model and an _id")
    if record is not None and not isinstance(record, dict):
        raise ValueError("a Planhat detail's record is an object or null")
    return model, planhat_id, record


def fetch(
    planhat: PlanhatClient, model: str, ids: Collection[str], take: Callable[[], None]
) -> dict[str, Record | None]:
    """Each of ``ids`` as Planhat has it now, None when it is gone. ``take()`` runs before
    each call (it raises when the budget is spent); Planhat's errors propagate."""
    spec = model_spec(model)
    wanted = set(ids)
    found: dict[str, Record] = {}
    can_get = spec.supports(Operation.GET)
    if not can_get or len(wanted) >= LIST_FROM:
        offset, pages = 0, 0
        while wanted - found.keys() and (not can_get or pages < LIST_PAGES):
            take()
            page = planhat.list_page(model, limit=spec.page_size, offset=offset, sort="-updatedAt")
            pages += 1
            for record in page:
                if not isinstance(record, dict):
                    raise PlanhatError(f"GET /{model}: a list item is not an object")
                if record.get("_id") in wanted:
                    found[str(record["_id"])] = record
            if len(page) < spec.page_size:
                break  # the whole list was read: what is not in it is gone
            offset += len(page)
        if not can_get:
            return {planhat_id: found.get(planhat_id) for planhat_id in wanted}
    result: dict[str, Record | None] = dict(found)
    for planhat_id in sorted(wanted - found.keys()):
        take()
        try:
            result[planhat_id] = planhat.get(model, planhat_id)
        except NotFoundError:
            result[planhat_id] = None
    return result
