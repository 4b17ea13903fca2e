"""Changes made in Planhat: echo check, link update, and the write-back queue.

A change read from Planhat (``origin="planhat"``, keyed by ``_id``: a hint's re-read) is
offered here instead of to the forward outbox. Its record's link says which source record
it is; then, in the ingest's transaction:

    no link                              unlinked: no source record to write back to
    deleted                              the link becomes a tombstone (links.tombstone),
                                         and the deletion goes back if the source takes it
    the synced fields hash as we last    echo: dropped at no cost (the read is noted)
    read them, or as we last wrote them
    (and read nothing since), or hold
    what a write of ours not settled
    yet sends
    otherwise                            the link and the record state take Planhat's
                                         values; the changed fields go back to the source
                                         (a write_back row, coalesced per record) unless
                                         the source takes none for this model, or they
                                         hash as what we last wrote to it (echo)

The synced fields of a record are those its source maps (what we wrote to Planhat for
it); a change made in Planhat to another field is not written back. Which of the changed
fields go back, field by field, is decided by ownership and last-writer-wins
(``worker/pipeline/conflicts.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import structlog
from sqlmodel import Session

from connectors.change import Change, fields_hash
from connectors.source import WritesBack
from connectors.sources import SOURCES, OptionError, source_options
from state.tables import Link, OutboxItem, RecordState, WriteBackItem, utcnow
from worker.pipeline.conflicts import to_source
from worker.pipeline.links import (
    comparable,
    link_of_planhat_id,
    nested,
    tombstone,
    unread_write_to_source,
)

log = structlog.get_logger(__name__)


class Back(StrEnum):
    UNLINKED = "unlinked"  # no source record: nothing to write back to
    ECHO = "echo"  # what we last wrote or read: dropped at no cost
    TOMBSTONED = "tombstoned"  # deleted in Planhat
    KEPT = "kept"  # noted as Planhat has it; its source takes no write-back of this model
    QUARANTINED = "quarantined"  # flapping: dropped until dlq retry releases it
    OVERRULED = "overruled"  # owned by the source, or older than its waiting write
    WRITE_BACK = "write back"  # queued to be written back to its source


def offer_from_planhat(
    session: Session,
    connection: str,
    change: Change,
    *,
    options: Mapping[str, str],
    inbox_id: int | None = None,
) -> Back:
    """Decide what a change made in Planhat does (see the module's doc). ``options``: the
    connection's mapping options."""
    link = link_of_planhat_id(session, connection, change.model, change.key)
    if link is None:
        return Back.UNLINKED
    if link.quarantined_at is not None:
        return Back.QUARANTINED
    if change.action == "deleted":
        if link.deleted_at is None:
            tombstone(session, link)
            log.info("reverse.tombstoned", model=change.model, key=link.key)
            if _takes(link, options):
                _queue(session, link, change, {}, inbox_id, deleted=True)
        return Back.TOMBSTONED
    if link.deleted_at is not None:
        return Back.TOMBSTONED  # a read from before the deletion, processed after it
    now = utcnow()
    flat = comparable(change.model, change.fields)
    if _our_write_in_flight(session, link, flat):
        return Back.ECHO  # its settle records what Planhat holds
    seen = {name: flat.get(name) for name in link.planhat_fields}
    seen_hash = fields_hash(seen)
    read_since_written = link.planhat_read_at is not None and (
        link.planhat_written_at is None or link.planhat_read_at > link.planhat_written_at
    )
    if seen_hash == link.planhat_read_hash or (
        seen_hash == link.planhat_written_hash and not read_since_written
    ):
        link.planhat_read_hash, link.planhat_read_at = seen_hash, now
        session.add(link)
        return Back.ECHO
    changed = {
        name: value for name, value in seen.items() if link.planhat_fields.get(name) != value
    }
    link.planhat_fields = seen
    link.planhat_read_hash, link.planhat_read_at = seen_hash, now
    session.add(link)
    if not _takes(link, options):
        _note_pushed(session, link, changed)
        return Back.KEPT
    back = to_source(session, link, changed, change.version, options)  # ownership, LWW
    _note_pushed(session, link, changed)
    if not back:
        return Back.OVERRULED
    if unread_write_to_source(link) and fields_hash(back) == link.source_written_hash:
        return Back.ECHO  # the source has it, and has said nothing else since
    _queue(session, link, change, back, inbox_id)
    return Back.WRITE_BACK


def _our_write_in_flight(session: Session, link: Link, flat: Mapping[str, Any]) -> bool:
    """Whether Planhat holds what a write of ours not yet settled sends: its automation
    fires as soon as Planhat has the write, before the flush records it on the link."""
    row = session.get(OutboxItem, (link.connection, link.model, link.key))
    if row is None:
        return False
    expected = {**link.planhat_fields, **comparable(link.model, row.fields)}
    return all(flat.get(name) == value for name, value in expected.items())


def _takes(link: Link, options: Mapping[str, str]) -> bool:
    """Whether the link's source takes write-backs of its model."""
    source = SOURCES.get(link.source)
    if not isinstance(source, WritesBack):
        return False
    try:
        return source.writes_back(link.model, source_options(source, options))
    except OptionError as error:  # said until the option is fixed; nothing is written
        log.warning("reverse.bad_options", source=link.source, error=str(error))
        return False


def _note_pushed(session: Session, link: Link, changed: Mapping[str, Any]) -> None:
    """Planhat holds these values now: so does what we pushed, as far as the diff goes (a
    source echoing them back is then unchanged). Its version is the source's: untouched."""
    state = session.get(RecordState, (link.connection, link.model, link.key))
    if state is None or not changed:
        return
    fields = dict(state.fields)
    for name, value in nested(changed).items():
        if name == "custom" and isinstance(fields.get("custom"), dict):
            fields["custom"] = {**fields["custom"], **value}
        else:
            fields[name] = value
    state.fields, state.fields_hash = fields, fields_hash(fields)
    session.add(state)


def _queue(
    session: Session,
    link: Link,
    change: Change,
    changed: Mapping[str, Any],
    inbox_id: int | None,
    *,
    deleted: bool = False,
) -> None:
    """One write_back row per record and source; a newer change merges into it."""
    key = (link.connection, link.source, link.model, link.key)
    row = session.get(WriteBackItem, key, with_for_update=True)
    if row is None:
        session.add(
            WriteBackItem(
                connection=link.connection,
                source=link.source,
                model=link.model,
                key=link.key,
                key_field=link.key_field,
                key_value=link.key_value,
                planhat_id=link.planhat_id or change.key,
                fields=dict(changed),
                version=change.version,
                deleted=deleted,
                event_id=change.event_id,
                inbox_id=inbox_id,
            )
        )
        return
    if change.version >= row.version:
        row.fields = {**row.fields, **changed}
        row.version, row.event_id, row.inbox_id = change.version, change.event_id, inbox_id
    else:  # an older read arriving late: only what the row does not say yet
        row.fields = {**changed, **row.fields}
    row.deleted = row.deleted or deleted
    row.revision += 1
    row.next_attempt_at = min(row.next_attempt_at, utcnow())
    session.add(row)
