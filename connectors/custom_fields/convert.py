"""Type conversions: a source value as the type of the Planhat custom field it goes to.

Planhat's custom field types used here: ``text``, ``number``, ``date``, ``list``
(https://www.planhat.com/developers/api/custom-field lists the types a field may have).
Dates go as ISO 8601 in UTC with milliseconds, as Planhat writes its own
(``2024-01-31T00:00:00.000Z``; planhat-api.md: dates are ISO except invoices' day
numbers). A ``list`` value goes as a JSON array of strings (assumed: Planhat's docs show
no list value; its multi-pick fields hold the picked labels).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

TYPES = ("text", "number", "date", "list")

# Which rule types a source value of each kind may become. Text becomes a number or a date
# when it spells one (Stripe metadata values are always strings): a value that does not
# is refused when converted, naming the field.
ACCEPTS: dict[str, frozenset[str]] = {
    "text": frozenset({"text", "number", "date"}),
    "number": frozenset({"number", "text"}),
    "date": frozenset({"date", "text"}),
    "list": frozenset({"list", "text"}),
    "any": frozenset(TYPES),
}


class ConversionError(ValueError):
    """A value that is not of the rule's type; the message says why (never the value)."""


def convert(value: Any, kind: str) -> Any:
    """``value`` as Planhat takes a custom field of type ``kind``; ``None`` stays ``None``
    (the field is emptied). Raises ``ConversionError``."""
    if value is None:
        return None
    match kind:
        case "text":
            return _text(value)
        case "number":
            return _number(value)
        case "date":
            return _date(value)
        case "list":
            return _list(value)
    raise ValueError(f"no custom field type {kind!r} (types: {', '.join(TYPES)})")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        return ", ".join(str(item) for item in value)
    raise ConversionError(f"a {type(value).__name__} is not text")


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise ConversionError("a boolean is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise ConversionError("the text is not a number") from None
        if math.isfinite(number):
            return number
    raise ConversionError(f"a {type(value).__name__} is not a number")


def _date(value: Any) -> str:
    when: datetime
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            when = datetime.fromtimestamp(value, UTC)  # unix seconds (Stripe's times)
        except (OverflowError, OSError, ValueError):
            raise ConversionError("the number is not a time in unix seconds") from None
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConversionError("the text is not an ISO 8601 date") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    else:
        raise ConversionError(f"a {type(value).__name__} is not a date")
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        return [str(item) for item in value]
    raise ConversionError(f"a {type(value).__name__} is not a list of values")
