"""The Planhat side of custom field rules: the tenant's custom fields, found and created.

Custom fields have their own endpoints and no bulk upsert; a field is named uniquely
within its ``parent`` model, and creating one needs ``name``, ``parent``, ``type`` and
``isHidden`` (https://www.planhat.com/developers/api/custom-field; planhat-api.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.custom_fields.rules import Rule, RuleError
from connectors.planhat.client import PlanhatClient
from connectors.planhat.models import custom_field_model, custom_field_parent

MODEL = "customfields"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanhatField:
    model: str  # the model whose records hold it: "companies"
    name: str
    type: str
    hidden: bool
    id: str


def tenant_fields(planhat: PlanhatClient) -> list[PlanhatField]:
    """Every custom field of the tenant, by model and name."""
    return sorted(_fields(planhat.list(MODEL)), key=lambda f: (f.model, f.name))


def _fields(records: Iterable[Mapping[str, Any]]) -> Iterable[PlanhatField]:
    for record in records:
        parent = str(record.get("parent") or "")
        yield PlanhatField(
            model=custom_field_model(parent) or parent,  # a parent we know no model of: as is
            name=str(record.get("name") or ""),
            type=str(record.get("type") or ""),
            hidden=bool(record.get("isHidden")),
            id=str(record.get("_id") or ""),
        )


def by_model(fields: Iterable[PlanhatField]) -> dict[str, list[dict[str, Any]]]:
    """``planhat customfields``'s answer: model → its fields (name, type, isHidden, _id)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for item in fields:
        out.setdefault(item.model, []).append(
            {"name": item.name, "type": item.type, "isHidden": item.hidden, "_id": item.id}
        )
    return out


def check_in_planhat(planhat: PlanhatClient, rule: Rule, *, create: bool) -> str:
    """Make sure Planhat has the rule's field, of its type: say what was found or made.
    Raises ``RuleError``: no such field (and not ``create``), or one of another type."""
    found = next(
        (f for f in tenant_fields(planhat) if (f.model, f.name) == (rule.model, rule.name)),
        None,
    )
    if found is not None:
        if found.type != rule.type:
            raise RuleError(
                f"type mismatch: Planhat's {rule.target} is {found.type or 'untyped'}, "
                f"the rule makes {rule.type}"
            )
        return f"Planhat has {rule.target} ({found.type})"
    if not create:
        raise RuleError(
            f"Planhat has no custom field {rule.target}: create it there, or add --create"
        )
    planhat.create(
        MODEL,
        {
            "name": rule.name,
            "parent": custom_field_parent(rule.model),
            "type": rule.type,
            "isHidden": False,  # required on create; shown in Planhat like any other field
        },
    )
    return f"created {rule.target} ({rule.type}) in Planhat"
