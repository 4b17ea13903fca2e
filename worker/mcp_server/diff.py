"""The planned change of a write: what it sets that Planhat does not hold now."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.mcp_server.outputs import FieldChange


def _flat(record: Mapping[str, Any]) -> dict[str, Any]:
    """Fields as a diff names them: a custom field as ``custom.<name>`` (Planhat keeps the
    others of ``custom`` on a partial update: planhat-api.md)."""
    flat = {name: value for name, value in record.items() if name != "custom"}
    custom = record.get("custom")
    if isinstance(custom, Mapping):
        flat.update({f"custom.{name}": value for name, value in custom.items()})
    elif "custom" in record:
        flat["custom"] = custom
    return flat


def diff(current: Mapping[str, Any], planned: Mapping[str, Any]) -> list[FieldChange]:
    """Each field ``planned`` sets to a value ``current`` does not hold."""
    now, then = _flat(current), _flat(planned)
    return [
        FieldChange(field=name, before=now.get(name), after=value, new=name not in now)
        for name, value in then.items()
        if name not in now or now[name] != value
    ]


def same(current: Mapping[str, Any], planned: Mapping[str, Any]) -> list[str]:
    now = _flat(current)
    return [name for name, value in _flat(planned).items() if name in now and now[name] == value]
