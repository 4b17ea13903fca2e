"""Source field paths: the small syntax a custom field rule reads a value with.

A path starts at a *root* the source names (``customer``, ``ticket``, ``answer``) and takes
steps from there:

    name             the root, or a key of the object reached so far: ``customer.metadata``
    .key             a key (any character but ``. [ ] ( ) =`` and spaces): ``.segment``
    [123]            in a list, the item whose ``id`` is 123 (Zendesk ``custom_fields``)
    (ref=plan)       in a list, the item whose ``ref`` is ``plan`` (any key: ``(id=x)``)

An item picked from a list (``[…]``, ``(…)``) gives its ``value`` when it has one
(Zendesk's ``{"id": 123, "value": "high"}``), else itself. Sources declare the paths they
offer as patterns, where ``<word>`` stands for any key, id or value: ``customer.metadata.
<key>``, ``ticket.custom_fields[<id>]``, ``answer(ref=<ref>)``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("text", "number", "date", "list", "any")

_NAME = r"[^.\[\]()=\s]+"
_STEP = re.compile(
    rf"\.(?P<key>{_NAME})|\[(?P<id>[^\[\]\s]+)\]|\((?P<where>{_NAME})=(?P<value>[^()\s]+)\)"
)
_ROOT = re.compile(_NAME)
_PLACEHOLDER = re.compile(r"<[a-z_]+>")


class PathError(ValueError):
    """A path that does not parse; the message says where."""


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # "key", "id" or "where"
    name: str = ""  # the key ("key"), or the item's field ("where"; "id" for "id")
    value: str = ""  # the item's id or field value ("id", "where")

    def matches(self, pattern: Step) -> bool:
        """Whether this step is one ``pattern`` (a declared path's step) allows."""
        if self.kind != pattern.kind:
            return False
        return _fits(self.name, pattern.name) and _fits(self.value, pattern.value)


def _fits(given: str, declared: str) -> bool:
    return given == declared or bool(_PLACEHOLDER.fullmatch(declared))


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A path a source offers to rules: a pattern, the kind of value found there, and the
    Planhat models its events' changes carry it to."""

    pattern: str
    kind: str  # one of KINDS ("any": the value's type varies, checked when converted)
    models: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.pattern}: no kind {self.kind!r} (kinds: {', '.join(KINDS)})")
        parse(self.pattern)

    def matches(self, path: tuple[Step, ...]) -> bool:
        steps = parse(self.pattern)
        return len(steps) == len(path) and all(
            step.matches(declared) for step, declared in zip(path, steps, strict=True)
        )


@functools.lru_cache(maxsize=1024)  # every event parses its connection's few rules' paths
def parse(path: str) -> tuple[Step, ...]:
    """``customer.metadata.segment`` → its steps. Raises ``PathError``."""
    root = _ROOT.match(path)
    if root is None:
        raise PathError(f"path {path!r} must start with a name (customer, ticket, answer…)")
    steps = [Step("key", root.group())]
    position = root.end()
    while position < len(path):
        found = _STEP.match(path, position)
        if found is None:
            raise PathError(f"path {path!r}: cannot read {path[position:]!r} (see README)")
        if found.group("key") is not None:
            steps.append(Step("key", found.group("key")))
        elif found.group("id") is not None:
            steps.append(Step("id", "id", found.group("id")))
        else:
            steps.append(Step("where", found.group("where"), found.group("value")))
        position = found.end()
    return tuple(steps)


class _Missing:
    """Nothing at the path in this event (``None`` is a value: a field emptied)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def resolve(path: tuple[Step, ...], roots: Mapping[str, Any]) -> Any:
    """The value at ``path`` among an event's ``roots``, or ``MISSING``."""
    current: Any = roots
    for step in path:
        if step.kind == "key":
            if not isinstance(current, Mapping) or step.name not in current:
                return MISSING
            current = current[step.name]
            continue
        if not isinstance(current, list):
            return MISSING
        item = next(
            (
                item
                for item in current
                if isinstance(item, Mapping) and str(item.get(step.name)) == step.value
            ),
            None,
        )
        if item is None:
            return MISSING
        current = item.get("value", item)
    return current
