"""Custom field rules: "this source field → that Planhat model's custom field", per connection.

A rule is stored with the connection's mapping options (``connectors/options.py``), one
option each: ``<source>.custom.<model>.<Name>`` → ``<type>:<path>``, e.g.
``stripe.custom.companies.Segment`` → ``text:customer.metadata.segment``. So a rule
travels wherever options do (stored rows, the ``default`` connection's environment) and a
connection never reads another's. ``with_custom_fields`` adds the values an event holds
to its changes as ``custom.<Name>`` fields, before the diff: a value that did not change
costs no call, one that did costs the record's one write.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from connectors.change import Change, RecordRejected
from connectors.custom_fields.convert import ACCEPTS, TYPES, ConversionError, convert
from connectors.custom_fields.paths import MISSING, PathError, Step, parse, resolve
from connectors.planhat.models import UnknownModelError, custom_field_parent
from connectors.source import OffersFields, Source

MARK = "custom"  # the option's second part: <source>.custom.<model>.<Name>


class RuleError(ValueError):
    """A rule that cannot be taken; the message (one line) says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    source: str
    path: str  # source field path (connectors/custom_fields/paths.py)
    model: str  # Planhat model: "companies"
    name: str  # the custom field's name in Planhat: "Segment"
    type: str  # text, number, date or list

    @property
    def target(self) -> str:
        return f"{self.model}.custom.{self.name}"

    @property
    def field(self) -> str:
        """The field a change carries its value in (compared per custom field)."""
        return f"custom.{self.name}"

    @property
    def option(self) -> tuple[str, str]:
        return f"{self.source}.{MARK}.{self.model}.{self.name}", f"{self.type}:{self.path}"

    @property
    def steps(self) -> tuple[Step, ...]:
        return parse(self.path)

    def describe(self) -> str:
        return f"{self.source}: {self.path} -> {self.target} ({self.type})"


def is_rule_option(key: str) -> bool:
    """Whether a connection option is a rule (``stripe.custom.companies.Segment``)."""
    return key.split(".", 2)[1:2] == [MARK]


def new_rule(source: str, path: str, target: str, kind: str) -> Rule:
    """A rule from its parts as a user writes them; ``target``: ``<model>.custom.<Name>``.
    Raises ``RuleError`` for a malformed one (whether the source offers the path is
    ``check_with_source``'s)."""
    model, sep, name = target.partition(f".{MARK}.")
    if not sep or not model or not name.strip():
        raise RuleError(f"{target!r}: a target is <planhat model>.custom.<Name>")
    if kind not in TYPES:
        raise RuleError(f"{target}: no type {kind!r} (types: {', '.join(TYPES)})")
    try:
        custom_field_parent(model)
        parse(path)
    except (UnknownModelError, PathError) as error:
        raise RuleError(str(error.args[0])) from None
    return Rule(source=source, path=path, model=model, name=name, type=kind)


def rule_of_option(key: str, value: str) -> Rule:
    """The rule an option holds. Raises ``RuleError``."""
    source, _, rest = key.partition(f".{MARK}.")
    model, _, name = rest.partition(".")
    kind, sep, path = value.partition(":")
    if not sep:
        raise RuleError(f"{key}={value!r}: a rule's value is <type>:<path>")
    return new_rule(source, path, f"{model}.{MARK}.{name}", kind)


def rules_of(options: Mapping[str, str], source: str | None = None) -> list[Rule]:
    """A connection's rules (of one source), in the order of their options' keys."""
    return [
        rule_of_option(key, value)
        for key, value in sorted(options.items())
        if is_rule_option(key) and (source is None or key.partition(".")[0] == source)
    ]


def check_with_source(rule: Rule, source: Source | None) -> None:
    """Refuse a rule its source cannot serve: no such source, a path it does not offer
    (or not to that model), or a type its value cannot become. ``RuleError`` says which."""
    if source is None:
        raise RuleError(f"{rule.describe()}: no source named {rule.source!r}")
    if not isinstance(source, OffersFields):
        raise RuleError(f"{rule.describe()}: {source.name} offers no fields to map")
    steps = rule.steps
    offered = [path for path in source.field_paths if path.matches(steps)]
    if not offered:
        choices = ", ".join(path.pattern for path in source.field_paths)
        raise RuleError(f"unknown path {rule.path!r} for {source.name} (it offers: {choices})")
    reaching = [path for path in offered if rule.model in path.models]
    if not reaching:
        models = ", ".join(sorted({m for path in offered for m in path.models}))
        raise RuleError(f"{source.name} {rule.path} reaches {models}, not {rule.model}")
    if not any(rule.type in ACCEPTS[path.kind] for path in reaching):
        kind = reaching[0].kind
        raise RuleError(f"type mismatch: {source.name} {rule.path} is {kind}, not {rule.type}")


def with_custom_fields(
    source: Source, body: bytes, changes: list[Change], options: Mapping[str, str]
) -> list[Change]:
    """``changes`` with the values the connection's rules for ``source`` find in the event,
    as ``custom.<Name>`` fields of each change of the rule's model. A path the event does
    not hold adds nothing. A value not of its rule's type raises ``RecordRejected`` naming
    the field (the event becomes a dead letter, replayable once the rule is fixed)."""
    rules = rules_of(options, source.name)
    if not rules or not changes or not isinstance(source, OffersFields):
        return changes
    roots = source.field_roots(body)
    found: dict[str, dict[str, Any]] = {}
    for rule in rules:
        value = resolve(rule.steps, roots)
        if value is MISSING:
            continue
        try:
            found.setdefault(rule.model, {})[rule.field] = convert(value, rule.type)
        except ConversionError as error:
            raise RecordRejected(f"custom field {rule.target} ({rule.type}): {error}") from None
    return [
        replace(change, fields={**change.fields, **found[change.model]})
        if change.model in found and change.origin == "source" and change.action != "deleted"
        else change
        for change in changes
    ]


def rules_from_file(path: Path) -> dict[str, str]:
    """The options a rules file holds (TOML; the ``default`` connection's, from
    ``PLANHAT_SYNC_MAPPINGS_FILE``)::

        [[mapping]]
        source = "stripe"
        path = "customer.metadata.segment"
        field = "companies.custom.Segment"
        type = "text"

    Raises ``RuleError`` naming the file and the entry."""
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RuleError(f"{path}: {error}") from None
    entries = document.get("mapping", [])
    if not isinstance(entries, list):
        raise RuleError(f"{path}: 'mapping' must be an array of tables ([[mapping]])")
    options: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        try:
            rule = _entry_rule(entry)
        except RuleError as error:
            raise RuleError(f"{path}: mapping {number}: {error}") from None
        key, value = rule.option
        options[key] = value
    return options


def _entry_rule(entry: Any) -> Rule:
    if not isinstance(entry, dict):
        raise RuleError("expected a table with source, path, field and type")
    missing = [k for k in ("source", "path", "field", "type") if not isinstance(entry.get(k), str)]
    if missing:
        raise RuleError(f"missing {', '.join(missing)} (text)")
    return new_rule(entry["source"], entry["path"], entry["field"], entry["type"])


def check_rules(options: Mapping[str, str], sources: Mapping[str, Source]) -> None:
    """Raise ``RuleError`` unless every rule among ``options`` is well formed and its
    source serves it (``check_with_source``)."""
    for rule in rules_of(options):
        check_with_source(rule, sources.get(rule.source))
