"""The diff rules as one pure function: what a change does to a record's pending write.

``merge(pending, pushed, change)`` sees the pending write (the outbox row, if any), what
was last pushed to Planhat (the record state, if any) and one change, and returns a
``Decision``; the database code (``worker/pipeline/ingest.py``) applies it to the rows.
No session, no clock, no I/O: Hypothesis can run it thousands of times a second.
``pending_of`` and ``pushed_of`` read the rows into values.

The rules (ARCHITECTURE.md, invariants 3 and 4):

- **Never back in time.** A change older than the pushed version is stale: dropped.
- **No call without a difference.** A change whose fields, laid over what was pushed,
  hash the same as what was pushed is dropped; with no pending write it still raises the
  pushed version, so changes older than it are stale from then on.
- **Coalescing, last writer wins per field.** A change merges into the pending write; a
  field takes the change's value unless the pending value comes from a newer version, so
  changes with distinct versions merge to the same write in any arrival order. A newer
  change repeating the pending value still raises that field's version, or an older
  change arriving later would win the field.
- **Changed and changed back.** If the merged write, laid over what was pushed, equals
  what was pushed, the pending write is undone and the pushed version rises to its.

A change reaches ``merge`` without the fields Planhat writes itself (timestamps, computed
fields: ``worker/pipeline/ingest.py`` leaves them out), so they never count as a difference.

``still_needed`` is the same check made again when a flush claims a pending write:
something may have been pushed since the write was queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from connectors.change import fields_hash
from state.tables import OutboxItem, RecordState


class Versioned(Protocol):
    """Fields as of a source version: a ``Change``, or a pending write seen as one."""

    @property
    def fields(self) -> Mapping[str, Any]: ...

    @property
    def version(self) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """The pending write for a record (its outbox row), as values."""

    fields: Mapping[str, Any]
    field_versions: Mapping[str, int]  # the version each field's value comes from
    version: int  # the newest version merged in


@dataclass(frozen=True, slots=True, kw_only=True)
class Pushed:
    """What Planhat holds for a record, as far as we pushed it (its record state)."""

    fields: Mapping[str, Any]
    fields_hash: str  # as stored: the check compares against it, not a fresh hash
    version: int


class Outcome(StrEnum):
    STALE = "stale"  # older than what was pushed: nothing moves
    UNCHANGED = "unchanged"  # nothing new to write; the pushed version may rise
    NEW = "new"  # no pending write yet: one is queued
    MERGED = "merged"  # merged into the pending write, which changed
    UNDONE = "undone"  # changed and changed back: the pending write goes, the version rises


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What a change does, said as the state after it."""

    outcome: Outcome
    pending: Pending | None  # the pending write after the change (None: there is none)
    pushed_version: int | None  # the pushed version after the change (None: nothing pushed)
    # The pending write now names this change's event (NEW, and MERGED unless the change
    # is older than the write): a replay or dead letter points at the newest event.
    takes_event: bool = False


def merge(pending: Pending | None, pushed: Pushed | None, change: Versioned) -> Decision:
    """Decide what ``change`` does to a record with ``pending`` write and ``pushed`` state."""
    pushed_version = pushed.version if pushed is not None else None
    if pushed is not None and change.version < pushed.version:
        return Decision(outcome=Outcome.STALE, pending=pending, pushed_version=pushed_version)
    if pending is None:
        if pushed is not None and _same_as_pushed(pushed, change.fields):
            # Later changes older than this one are stale.
            raised = max(pushed.version, change.version)
            return Decision(outcome=Outcome.UNCHANGED, pending=None, pushed_version=raised)
        new = Pending(
            fields=dict(change.fields),
            field_versions=dict.fromkeys(change.fields, change.version),
            version=change.version,
        )
        return Decision(
            outcome=Outcome.NEW, pending=new, pushed_version=pushed_version, takes_event=True
        )
    fields = dict(pending.fields)
    versions = dict(pending.field_versions)
    for name, value in change.fields.items():
        # A field the pending write lacks takes the change's value whatever its version.
        if change.version >= versions.get(name, change.version):
            fields[name], versions[name] = value, change.version
    version = max(pending.version, change.version)
    # A duplicate of what is pending. Equal values alone are not enough: a newer change
    # with the same value must still raise its field's version (compared above).
    if (fields, versions, version) == (pending.fields, pending.field_versions, pending.version):
        return Decision(outcome=Outcome.UNCHANGED, pending=pending, pushed_version=pushed_version)
    if pushed is not None and _same_as_pushed(pushed, fields):
        raised = max(pushed.version, version)
        return Decision(outcome=Outcome.UNDONE, pending=None, pushed_version=raised)
    merged = Pending(fields=fields, field_versions=versions, version=version)
    return Decision(
        outcome=Outcome.MERGED,
        pending=merged,
        pushed_version=pushed_version,
        takes_event=change.version >= pending.version,
    )


def still_needed(pending: Versioned, pushed: Pushed | None) -> bool:
    """Whether a queued write must still go out when a flush claims it: not if what was
    pushed since is newer, or already holds its fields. The rule ``merge`` applies to a
    change with nothing pending: the write is offered as that change."""
    return merge(None, pushed, pending).outcome is Outcome.NEW


def pending_of(row: OutboxItem | None) -> Pending | None:
    """An outbox row's pending write, as a value (read, never changed)."""
    if row is None:
        return None
    return Pending(fields=row.fields, field_versions=row.field_versions, version=row.version)


def pushed_of(state: RecordState | None) -> Pushed | None:
    """A record state, as a value (read, never changed)."""
    if state is None:
        return None
    return Pushed(fields=state.fields, fields_hash=state.fields_hash, version=state.version)


def _same_as_pushed(pushed: Pushed, fields: Mapping[str, Any]) -> bool:
    return fields_hash({**pushed.fields, **fields}) == pushed.fields_hash
