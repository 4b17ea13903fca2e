"""The Typeform fields custom field rules may read: a response's answers and hidden fields.

``answer(ref=<ref>)`` (or ``answer(id=<id>)``) is the answer to the question with that
``field.ref`` (or ``field.id``); its value sits under its type
(https://www.typeform.com/developers/webhooks/example-payload/): a choice gives its label,
several choices their labels (a list), a number a number, a date its ``YYYY-MM-DD``.
Which type a question has is the form's, so any rule type is offered and a value that is
not of it is refused when it arrives. ``hidden.<name>``: a hidden field (text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors.custom_fields.paths import FieldPath
from connectors.typeform.mapping import value

NPS = ("nps",)

FIELD_PATHS = (
    FieldPath("answer(ref=<ref>)", "any", NPS),
    FieldPath("answer(id=<id>)", "any", NPS),
    FieldPath("hidden.<name>", "text", NPS),
)


def _plain(answer: dict[str, Any]) -> Any:
    found = value(answer)
    if answer.get("type") == "choice" and isinstance(found, dict):
        return found.get("label", found.get("other"))
    if answer.get("type") == "choices" and isinstance(found, dict):
        return list(found.get("labels") or [])
    return found


def field_roots(body: bytes) -> Mapping[str, Any]:
    try:
        response = json.loads(body)["form_response"]
        answers = list(response.get("answers") or [])
        hidden = response.get("hidden") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}  # the mapping says what is wrong with the event
    items = [
        {
            "ref": (answer.get("field") or {}).get("ref"),
            "id": (answer.get("field") or {}).get("id"),
            "value": _plain(answer),
        }
        for answer in answers
        if isinstance(answer, dict)
    ]
    return {"answer": items, "hidden": hidden if isinstance(hidden, dict) else {}}
