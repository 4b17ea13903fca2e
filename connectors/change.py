"""``Change``: the one thing a source mapping produces.

A change says "this Planhat record, addressed by this key, should have these fields, as of
this source version". Mappings are pure functions from a parsed event to changes; the
pipeline decides whether a change costs a Planhat call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.planhat.models import ModelSpec, model_spec


class MappingError(ValueError):
    """An event that cannot become changes; the message says why."""


class RecordRejected(MappingError):
    """A well-formed event whose record cannot go to Planhat (a survey score outside 0-10,
    no e-mail). The receiver still accepts and keeps the event; the pipeline makes it a
    dead letter with this reason, which a replay re-runs once the cause is fixed."""


ORIGINS = ("source", "planhat")
ACTIONS = ("updated", "created", "deleted")


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    model: str  # Planhat API path name: "licenses"
    # "sourceId", or the model's external key ("externalId"; invoices "extId"); custom
    # fields, which have neither, "name" (``ModelSpec.key_fields``)
    key_field: str
    key: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    version: int  # source version, normalised by ``version_number``; higher is newer
    origin: str = "source"  # "source" or "planhat" (a change coming back)
    event_id: str | None = None
    # "updated": the record has these fields (an upsert: most events say no more);
    # "created": the source says it created the record (again: a record deleted in Planhat
    # comes back only then); "deleted": the record is gone (from Planhat: a tombstone).
    action: str = "updated"
    # The source says this is our own write coming back (Zendesk: the ticket's last audit
    # carries our origin tag): dropped as an echo, on top of the hash rule (links.gate).
    echo_of_ours: bool = False

    def __post_init__(self) -> None:
        spec = model_spec(self.model)
        # A change made in Planhat names its record by Planhat's own _id.
        keys = ("_id",) if self.origin == "planhat" else spec.key_fields
        if self.key_field not in keys:
            raise ValueError(
                f"{self.model} records are keyed by {' or '.join(keys)}, not {self.key_field!r}"
            )
        if self.origin not in ORIGINS or self.action not in ACTIONS:
            raise ValueError(f"no origin {self.origin!r} or action {self.action!r}")
        if not self.key:
            raise ValueError("a change needs a non-empty key")
        _check_storable(self)

    @property
    def spec(self) -> ModelSpec:
        return model_spec(self.model)

    @property
    def record_key(self) -> str:
        """The record's identity in our state. An external id is unique per company only
        (a custom field's name per parent model), so its key carries the company reference
        (the parent)."""
        scope = self.spec.key_scope(self.key_field)
        if scope:
            return f"{self.key_field}={self.key}@{self.fields.get(scope, '')}"
        return f"{self.key_field}={self.key}"


MAX_KEY = 255  # characters of a key (the state store's column)
MAX_VERSION = 2**63 - 1  # a version is a BIGINT in the state store


def _check_storable(change: Change) -> None:
    """Refuse, naming the field, what the state store cannot hold: retrying would fail the
    same way forever (PostgreSQL refuses NaN in JSON, BIGINT and column limits)."""
    what = f"{change.model} {change.key_field}"
    if "\x00" in change.key:  # PostgreSQL text holds no NUL
        raise MappingError(f"{what}: the key holds a NUL character")
    if len(change.key) > MAX_KEY:
        raise MappingError(f"{what}: the key is {len(change.key)} characters (at most {MAX_KEY})")
    if not -MAX_VERSION <= change.version <= MAX_VERSION:
        raise MappingError(f"{what}={change.key}: the version is out of range (64-bit)")
    for name, value in change.fields.items():
        try:
            json.dumps(value, allow_nan=False, ensure_ascii=False, default=str).encode()
        except UnicodeEncodeError:
            raise MappingError(
                f"{what}={change.key}: field {name!r} holds text that is not Unicode "
                "(a lone surrogate, such as the JSON escape \\ud800)"
            ) from None
        except ValueError:
            raise MappingError(
                f"{what}={change.key}: field {name!r} holds NaN or Infinity, which no JSON "
                "store or Planhat accepts"
            ) from None


def fields_hash(fields: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys, no spaces) → SHA-256: equal fields, equal hash."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Versions are stored as a signed 64-bit integer (BIGINT).
MAX_VERSION = 2**63 - 1


def version_number(value: Any) -> int:
    """A source version as an integer that orders correctly.

    Integers (sequence numbers, Unix seconds) stay as they are; an ISO 8601 time becomes
    microseconds since the epoch. Mixing both kinds for one record is not supported.
    """
    number = _version_number(value)
    if not -MAX_VERSION <= number <= MAX_VERSION:
        raise ValueError("a version must fit in 64 bits (a BIGINT)")
    return number


def _version_number(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a version is an ISO time or an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"version {value!r} is neither an ISO time nor an integer") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delta = when - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise ValueError(f"version {value!r} is neither an ISO time nor an integer")
