"""Tool input schemas from the model registry, and the checks behind them.

A record a tool sends is an open JSON object (Planhat keeps fields the registry does not
list, ``custom`` among them), with what the registry knows written into its schema:
the required fields (a group of alternatives, license ``mrr`` or ``value``, is an
``anyOf`` of ``required``), the keyables a bulk upsert matches on, the documented
choices and the fields Planhat takes as day numbers. The same facts are checked again
in the tool, so a client that skips schema validation gets the same message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.planhat.models import ModelSpec

JSONSchema = dict[str, Any]


def record_schema(spec: ModelSpec, *, creating: bool, keyed: bool = False) -> JSONSchema:
    """A record of ``spec``: for create/upsert (``creating``) with its required fields;
    ``keyed``: it must also carry a keyable (a bulk upsert updates rather than duplicates
    only then, ARCHITECTURE.md invariant 2)."""
    properties: dict[str, JSONSchema] = {}
    for name, values in spec.choices:
        properties[name] = {"enum": list(values)}
    for name in sorted(spec.day_fields):
        properties[name] = {
            "type": "integer",
            "description": "days since 1970-01-01 (Planhat's day format for this field)",
        }
    schema: JSONSchema = {"type": "object", "additionalProperties": True}
    if properties:
        schema["properties"] = properties
    all_of: list[JSONSchema] = []
    if creating:
        single = [group[0] for group in spec.required if len(group) == 1]
        if single:
            schema["required"] = single
        all_of += [
            {"anyOf": [{"required": [name]} for name in group]}
            for group in spec.required
            if len(group) > 1
        ]
    if keyed:
        all_of.append({"anyOf": [{"required": [name]} for name in spec.keyables]})
    if all_of:
        schema["allOf"] = all_of
    schema["description"] = describe_record(spec, creating=creating, keyed=keyed)
    return schema


def describe_record(spec: ModelSpec, *, creating: bool, keyed: bool) -> str:
    parts = [f"A Planhat {spec.singular} as a JSON object of its fields."]
    if creating and spec.required:
        needed = ", ".join(" or ".join(group) for group in spec.required)
        parts.append(f"Required: {needed}.")
    if keyed:
        parts.append(f"Keyed by one of {', '.join(spec.keyables)} (Planhat matches in that order).")
    if spec.generated:
        parts.append(f"Planhat fills in {', '.join(sorted(spec.generated))} itself.")
    return " ".join(parts)


def missing_required(spec: ModelSpec, record: Mapping[str, Any]) -> list[str]:
    """The required groups ``record`` lacks, as ``"mrr or value"``; none: complete."""
    return [
        " or ".join(group)
        for group in spec.required
        if not any(record.get(name) not in (None, "") for name in group)
    ]


def key_of(spec: ModelSpec, record: Mapping[str, Any]) -> tuple[str, str] | None:
    """The keyable Planhat will match ``record`` on, and its value; None: unkeyed."""
    for name in spec.keyables:
        value = record.get(name)
        if value not in (None, ""):
            return name, str(value)
    return None


def reference(spec: ModelSpec, key: tuple[str, str]) -> str:
    """The path form of a key: ``_id`` as it is, ``srcid-…``, ``extid-…``."""
    name, value = key
    if name == "_id":
        return value
    return f"srcid-{value}" if name == "sourceId" else f"extid-{value}"


def id_description(spec: ModelSpec) -> str:
    if not spec.alt_keys:
        return f"The {spec.singular}'s Planhat _id."
    return f"The {spec.singular}: its Planhat _id, extid-<{spec.external_key}> or srcid-<sourceId>."
