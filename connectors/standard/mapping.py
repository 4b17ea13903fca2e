"""The ``standard`` source's body: Planhat records as JSON, mapped one to one.

    {"model": "licenses", "key": {"sourceId": "sub_1"}, "fields": {...},
     "version": "2026-01-01T00:00:00Z"}

with, optionally, ``"action": "created"``: the sender created the record (again), the one
thing that brings back a record deleted in Planhat (``"updated"``, the default, does not).

or ``{"changes": [ ... ]}`` with up to 1,000 of those. ``model`` is the Planhat API path
name; ``key`` names one keyable: ``sourceId``, or the model's external key
(``externalId``; ``extId`` for invoices), or for custom fields, which Planhat keys by name
within their parent model, ``name`` (with ``parent`` among the fields); ``version`` is an
ISO time or an integer.
"""

from __future__ import annotations

from typing import Any

from connectors.change import Change, MappingError, version_number
from connectors.planhat.models import UnknownModelError, model_spec
from connectors.webhooks import BodyError, load_json

MAX_CHANGES = 1000


class StandardBodyError(MappingError):
    pass


def _change(item: Any, position: str, event_id: str) -> Change:
    if not isinstance(item, dict):
        raise StandardBodyError(f"{position}: expected an object")
    try:
        spec = model_spec(str(item.get("model")))
    except UnknownModelError as error:
        raise StandardBodyError(f"{position}: {error}") from None
    key = item.get("key")
    allowed = spec.key_fields
    if not (isinstance(key, dict) and len(key) == 1 and next(iter(key)) in allowed):
        shapes = " or ".join(f"{{'{name}': …}}" for name in allowed)
        raise StandardBodyError(f"{position}: key must be one of {shapes}")
    [(key_field, key_value)] = key.items()
    if not isinstance(key_value, str | int) or key_value == "":
        raise StandardBodyError(f"{position}: the key's value must be a non-empty string")
    fields = item.get("fields", {})
    if not isinstance(fields, dict):
        raise StandardBodyError(f"{position}: fields must be an object")
    if "version" not in item:
        raise StandardBodyError(f"{position}: version is required (ISO time or integer)")
    try:
        version = version_number(item["version"])
    except ValueError as error:
        raise StandardBodyError(f"{position}: {error}") from None
    action = item.get("action", "updated")
    if action not in ("created", "updated"):
        raise StandardBodyError(f'{position}: action is "created" or "updated"')
    return Change(
        model=spec.name,
        key_field=key_field,
        key=str(key_value),
        fields={k: v for k, v in fields.items() if k not in ("_id", key_field)},
        version=version,
        event_id=event_id,
        action=action,
    )


def parse(body: bytes, event_id: str) -> list[Change]:
    try:
        document = load_json(body)
    except BodyError as error:
        raise StandardBodyError(str(error)) from None
    if isinstance(document, dict) and "changes" in document:
        items = document["changes"]
        if not isinstance(items, list) or not items:
            raise StandardBodyError("changes must be a non-empty array")
        if len(items) > MAX_CHANGES:
            raise StandardBodyError(f"at most {MAX_CHANGES} changes per event")
        return [_change(item, f"changes[{i}]", event_id) for i, item in enumerate(items)]
    return [_change(document, "body", event_id)]
