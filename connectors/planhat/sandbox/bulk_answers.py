"""Planhat's answer to a bulk upsert (``PUT /<model>`` with an array).

Statuses (https://www.planhat.com/developers/api/http-response-codes): 200 all ok;
206 some failed; 400 a bad payload ("usually a required key is missing or it's
duplicated"), its errors in ``createdErrors``/``updatedErrors``; 403 permission
errors in ``permissionErrors``, the permitted writes applied ("one or all the
operations"). Inference: 400 when items failed and none was written (206 means
"some operations were successful"). Assumed: a whole-payload refusal (not an array,
over 5,000 items, a key named twice) is the same JSON answer with one error entry
per cause, and nothing is written.
"""

from __future__ import annotations

from typing import Any

from connectors.planhat.bulk import MAX_BULK_ITEMS, record_keys
from connectors.planhat.models import ModelSpec
from connectors.planhat.sandbox.store import Doc


def new_answer() -> dict[str, Any]:
    return {
        "created": 0, "createdErrors": [], "insertsKeys": [],
        "updated": 0, "updatedErrors": [], "updatesKeys": [],
        "nonupdates": 0, "modified": [], "upsertedIds": [], "permissionErrors": [],
    }  # fmt: skip


def status_of(answer: dict[str, Any]) -> int:
    written = answer["created"] + answer["updated"] + answer["nonupdates"]
    failed = answer["createdErrors"] or answer["updatedErrors"]
    if answer["permissionErrors"]:
        return 403
    if failed:
        return 206 if written else 400
    return 200


def refuse_payload(spec: ModelSpec, items: Any) -> list[dict[str, Any]]:
    """Error entries for a payload refused as a whole, or none."""
    if not isinstance(items, list):
        return [{"message": "bulk upsert expects a JSON array of objects"}]
    if len(items) > MAX_BULK_ITEMS:
        return [{"message": f"bulk upsert takes at most {MAX_BULK_ITEMS} items"}]
    seen: set[tuple[str, ...]] = set()
    twice: list[dict[str, Any]] = []
    for item in items:
        for key in record_keys(spec, item) if isinstance(item, dict) else []:
            if key in seen:
                message = f"duplicate key in payload: {key[0]}={key[-1]}"
                twice.append({key[0]: key[-1], "message": message})
            seen.add(key)
    return twice


def same(before: Doc, after: Doc) -> bool:
    ignore = ("updatedAt", "lastUpdated")
    return {k: v for k, v in before.items() if k not in ignore} == {
        k: v for k, v in after.items() if k not in ignore
    }
