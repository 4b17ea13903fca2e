"""The values a sandbox record must hold: required fields, numbers in range, day-number
dates, documented choices, custom values of their field's type. Each refusal is a
``SandboxError`` 400 whose text is assumed (Planhat documents the rules, not its
messages)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from connectors.planhat.models import CUSTOM_FIELD_PARENTS, MODELS, ModelSpec
from connectors.planhat.sandbox.errors import SandboxError, present
from connectors.planhat.sandbox.store import Doc

INVOICES = MODELS["invoices"]


def check_required(spec: ModelSpec, doc: Doc) -> None:
    for group in spec.required:
        if not any(present(doc, field) for field in group):
            names = group[0] if len(group) == 1 else "one of " + ", ".join(group)
            raise SandboxError(400, f"{spec.singular}: missing required field {names}")


def check_values(spec: ModelSpec, doc: Doc) -> None:
    def number(field: str) -> float:
        value = doc.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SandboxError(400, f"{spec.singular}: {field} must be a number")
        return float(value)

    if spec.name == "nps" and present(doc, "score") and not 0 <= number("score") <= 10:
        raise SandboxError(400, "NPS record: score must be between 0 and 10")
    if spec.name == "sales" and present(doc, "value") and number("value") <= 0:
        raise SandboxError(400, "sale: value must be greater than 0")
    if spec.name == "timeentries" and present(doc, "hours") and not 0.1 <= number("hours") <= 24:
        raise SandboxError(400, "time entry: hours must be between 0.1 and 24")
    # Day-number dates (invoices: "should be in days format integer", planhat.com/
    # developers/api/invoice). Refusing anything else, an ISO date too, is assumed: the
    # page does not say what Planhat does with one.
    for field in sorted(spec.day_fields):
        value = doc.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise SandboxError(
                400, f"{spec.singular}: {field} must be a whole number of days since 1970-01-01"
            )
    # The documented values (invoice status: pending, paid, overdue); refusing another
    # is assumed, the page only lists them.
    for field, allowed in spec.choices:
        if present(doc, field) and doc[field] not in allowed:
            raise SandboxError(400, f"{spec.singular}: {field} must be one of {', '.join(allowed)}")
    if spec is INVOICES and present(doc, "amountTotal"):
        number("amountTotal")  # "number" on Planhat's page; refusing text is assumed


def check_custom_values(spec: ModelSpec, custom: object, definitions: Iterable[Doc]) -> None:
    """Refuse a ``custom`` value sent that is not of its custom field's type (a field this
    model's ``parent`` defines by that name). Assumed: Planhat's docs say a field has a type
    (https://www.planhat.com/developers/api/custom-field), not how a value of another type
    is answered; a 400 naming the field is what clients can act on. Values of names no
    field defines are kept, as before; ``null`` empties a field of any type."""
    if not isinstance(custom, dict) or spec.name not in CUSTOM_FIELD_PARENTS:
        return
    parent = CUSTOM_FIELD_PARENTS[spec.name]
    types = {d.get("name"): d.get("type") for d in definitions if d.get("parent") == parent}
    for name, value in custom.items():
        kind = types.get(name)
        if value is None or kind is None or _is(kind, value):
            continue
        raise SandboxError(400, f"{spec.singular}: custom field {name!r} takes a {kind} value")


def _is(kind: object, value: object) -> bool:
    match kind:
        case "text":
            return isinstance(value, str)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "date":
            if not isinstance(value, str):
                return False
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return False
            return True
        case "list":
            return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return True  # another type (checkbox, user…): not checked here
