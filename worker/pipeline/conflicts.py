"""Ownership and conflicts: who may change which field, and who wins when both did.

Declared per source and model (``WritesBack.ownership``, from the connection's options;
the connection's custom field rules add the fields they fill to the source's):

- a field the source owns is never written back; edited in Planhat, it is put back to the
  source's value with the record's next change from the source;
- a field Planhat owns is never overwritten from the source once the record is in
  Planhat; edited at the source, it is put back to Planhat's value with the next write
  back of that record;
- every other field is shared: the later writer wins, each side on its own clock
  (Planhat's ``updatedAt``; the source's version), a tie to the source. A source version
  is a time only when it is one (an ISO time: microseconds since 1970); a sequence number
  cannot be compared with Planhat's clock, and the source wins;
- a shared field's value from the source that is only the source's spelling of what
  Planhat holds (``ReadsBack.read_back``: a helpdesk with no ``closed`` status takes
  Planhat ``closed`` as ``solved`` and sends back ``solved``) is no change: dropped,
  Planhat keeps its value. This is checked by value against what Planhat holds (the
  link), not against the hash of our last write: it holds for our write's own echo, for a
  poll listing it later (nothing there says it is ours), and for any later change of
  another field, which carries the whole record, that field included.

Both directions apply these in the ingest's transaction: ``to_source`` on the fields a
change made in Planhat changed, ``to_planhat`` on a change from the source. Each takes from
the other direction's waiting write what it lost (a pending outbox row, a write_back row).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from sqlmodel import Session

from connectors.change import Change
from connectors.custom_fields.rules import RuleError, rules_of
from connectors.source import Ownership, ReadsBack, WritesBack
from connectors.sources import SOURCES, OptionError, source_options
from state.tables import Link, OutboxItem, RecordState, WriteBackItem
from worker.pipeline.links import comparable, gate, nested

# Versions from here up are times in microseconds (1973 on); below, sequence numbers or
# seconds, which Planhat's clock cannot be compared with.
TIMES_FROM = 10**14


def ownership_of(link: Link, options: Mapping[str, str]) -> Ownership:
    """The link's source's declaration for its model (none: every field shared)."""
    source = SOURCES.get(link.source)
    if not isinstance(source, WritesBack):
        return Ownership()
    try:
        declared = source.ownership(link.model, source_options(source, options))
        mapped = {r.field for r in rules_of(options, link.source) if r.model == link.model}
    except (OptionError, RuleError):  # said by the write-back; meanwhile, nothing is owned
        return Ownership()
    # A custom field filled by a rule is one way: the source's (an edit in Planhat is put
    # back with the record's next change, never written to the source).
    return replace(declared, source=declared.source | mapped) if mapped else declared


def read_back_of(link: Link, options: Mapping[str, str]) -> Callable[[str, Any], Any]:
    """How the link's source spells a value Planhat holds when it comes back (field name,
    Planhat's value → the source's change's value); as itself when it says nothing."""
    source = SOURCES.get(link.source)
    if not isinstance(source, ReadsBack):
        return lambda name, value: value
    try:
        given = source_options(source, options)
    except OptionError:
        return lambda name, value: value
    return lambda name, value: source.read_back(link.model, name, value, given)


def to_source(
    session: Session,
    link: Link,
    changed: Mapping[str, Any],
    version: int,
    options: Mapping[str, str],
) -> dict[str, Any]:
    """Of the fields a change made in Planhat (at ``version``) changed, those that go back
    to the source, with what Planhat owes it from before. Before the record state takes
    Planhat's values: an owned field's source value is read there."""
    own = ownership_of(link, options)
    pending = session.get(OutboxItem, (link.connection, link.model, link.key), with_for_update=True)
    state = session.get(RecordState, (link.connection, link.model, link.key))
    pushed = comparable(link.model, state.fields) if state is not None else {}
    times, owed = dict(link.field_times or {}), dict(link.owed_planhat or {})
    back: dict[str, Any] = {}
    lost: list[str] = []  # fields the source's waiting write loses
    for name, value in changed.items():
        if name in own.source:  # edited on the wrong side: put back with the next change
            if name in pushed:
                owed[name] = pushed[name]
            continue
        if name not in own.planhat and pending is not None:
            written = pending.field_versions.get(_top(name))
            if written is not None and (written < TIMES_FROM or written >= version):
                continue  # the source's waiting write is as new or newer: it wins
        if name not in own.planhat:
            times[name] = version
        lost.append(name)
        back[name] = value
    if pending is not None and lost:
        _drop_from_outbox(session, pending, lost)
    link.field_times, link.owed_planhat = times or None, owed or None
    back = {**(link.owed_source or {}), **back}
    link.owed_source = None
    session.add(link)
    return back


def admit(
    session: Session, link: Link | None, change: Change, options: Mapping[str, str]
) -> tuple[str | None, Change | None]:
    """A change from a source, past its link: (why not, None) when it goes no further
    (``links.gate``), else (None, the change with what it may write to Planhat)."""
    stop = gate(session, link, change)
    if stop is not None or link is None:
        return stop, None if stop is not None else change
    if not (link.field_times or link.owed_planhat or link.owed_source or _two_way(link, options)):
        return None, change
    admitted = to_planhat(session, link, change, options)
    return (None, admitted) if admitted is not None else ("overruled", None)


def _two_way(link: Link, options: Mapping[str, str]) -> bool:
    source = SOURCES.get(link.source)
    if not isinstance(source, WritesBack):
        return False
    try:
        return source.writes_back(link.model, source_options(source, options))
    except OptionError:
        return False


def to_planhat(
    session: Session, link: Link, change: Change, options: Mapping[str, str]
) -> Change | None:
    """A change from the source with what it may write to Planhat, and what it owes it
    from before; None when nothing of it is left."""
    own = ownership_of(link, options)
    flat = comparable(change.model, change.fields)
    in_planhat = link.planhat_id is not None and link.deleted_at is None
    spelled = read_back_of(link, options)
    held = link.planhat_fields if in_planhat else {}
    times, owed = link.field_times or {}, dict(link.owed_source or {})
    drop: list[str] = []
    won: list[str] = []
    for name, value in flat.items():
        if name in own.planhat and in_planhat:
            if value != link.planhat_fields.get(name, value):
                owed[name] = link.planhat_fields[name]  # put back at the source
            drop.append(name)
        elif name in own.source:
            won.append(name)
        elif name in held and value != held[name] and value == spelled(name, held[name]):
            drop.append(name)  # the source's spelling of what Planhat holds: no change
        elif change.version >= TIMES_FROM and times.get(name, -1) > change.version:
            drop.append(name)  # Planhat's edit of it is newer
        else:
            won.append(name)
    if won:  # a write back of these waiting is older: it loses them
        _drop_from_write_back(session, link, won)
    fields = _without(change.fields, drop)
    if link.owed_planhat:
        fields = {**nested(link.owed_planhat), **fields}
    link.owed_planhat, link.owed_source = None, owed or None
    session.add(link)
    if not fields:
        return None
    return replace(change, fields=fields)


def _top(name: str) -> str:
    return "custom" if name.startswith("custom.") else name


def _without(fields: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``fields`` (as a source sends them) without these compared names."""
    out = dict(fields)
    for name in names:
        if name.startswith("custom.") and isinstance(out.get("custom"), Mapping):
            custom = {k: v for k, v in out["custom"].items() if k != name[7:]}
            if custom:
                out["custom"] = custom
            else:
                out.pop("custom")
        else:
            out.pop(name, None)
    return out


def _drop_from_outbox(session: Session, row: OutboxItem, names: list[str]) -> None:
    fields = _without(row.fields, names)
    if not fields:
        session.delete(row)
        return
    row.field_versions = {k: v for k, v in row.field_versions.items() if k in fields}
    row.fields = fields
    row.revision += 1  # a flush holding it must not settle it as sent
    session.add(row)


def _drop_from_write_back(session: Session, link: Link, names: list[str]) -> None:
    key = (link.connection, link.source, link.model, link.key)
    row = session.get(WriteBackItem, key, with_for_update=True)
    if row is None or row.deleted:
        return
    left = {k: v for k, v in row.fields.items() if k not in names}
    if not left:
        session.delete(row)
        return
    row.fields = left
    row.revision += 1
    session.add(row)
