"""Links: which source record each Planhat record is, and what each side last held.

A link ties ``(connection, model, key)`` (the record as our state knows it, e.g.
``sourceId=t-1``, and the source it came from) to the Planhat ``_id``, with the hash of its
synced fields as we last wrote and last read them on each side, and when. Both directions
update it in the transaction that records their write: the flush's settle (Planhat side
written, source side read), ingest of a change made in Planhat (Planhat side read), the
write-back's settle (source side written).

Echo suppression is by value, never by time (Planhat bumps ``updatedAt`` on every write):

- a change from a source equal to what we last wrote to it is dropped (``gate``);
- a change read from Planhat equal to what we last wrote there, or last read, is dropped
  (``worker/pipeline/reverse.py``).

The synced fields are compared as ``comparable`` makes them: the company reference is
left out (we name the company by a source key, Planhat answers with its ``_id``), hints
(``~`` names) too, and ``custom`` is flattened to ``custom.<name>`` (Planhat merges it per
key). Deleted in Planhat, a link becomes a tombstone: ``gate`` then drops every change of
its record but one whose source says it created the record again.

The flapping guard: each write notes its direction on the link (``wrote``). A record whose
writes turn direction more than ``flap_bounces`` times within ``flap_minutes`` (two
systems that keep undoing each other: no echo, a real loop) is quarantined as one dead
letter saying so; both directions then drop its changes until ``dlq retry`` releases it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlmodel import Session, col, select

from connectors.change import Change, fields_hash
from connectors.planhat.bulk import RecordResult
from connectors.planhat.models import model_spec
from state.db import for_update
from state.tables import (
    DeadLetter,
    InboxEvent,
    Link,
    OutboxItem,
    RecordState,
    WriteBackItem,
    utcnow,
)
from worker.pipeline.batch import Claimed, FlushPolicy

log = structlog.get_logger(__name__)


def comparable(model: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` as both sides can compare them (see the module's doc)."""
    skip = {"_id", model_spec(model).company_key}
    flat: dict[str, Any] = {}
    for name, value in fields.items():
        if name in skip or name.startswith("~"):
            continue
        if name == "custom" and isinstance(value, Mapping):
            flat.update({f"custom.{key}": item for key, item in value.items()})
        else:
            flat[name] = value
    return flat


def nested(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``comparable``'s flat ``custom.<name>`` fields back in a ``custom`` object (merged
    into one ``fields`` may hold already; the flat ones win). ``fields`` is not changed."""
    out: dict[str, Any] = {}
    custom: dict[str, Any] | None = None
    for name, value in fields.items():
        if name.startswith("custom."):
            custom = {**(custom or {}), name.removeprefix("custom."): value}
        elif name == "custom" and isinstance(value, Mapping):
            custom = {**value, **(custom or {})}
        else:
            out[name] = value
    if custom is not None:
        out["custom"] = custom
    return out


def links(
    session: Session, connection: str, model: str, keys: Collection[str], *, lock: bool = False
) -> dict[str, Link]:
    """The links of these records (by key)."""
    query = select(Link).where(
        Link.connection == connection, Link.model == model, col(Link.key).in_(keys)
    )
    if lock:
        query = for_update(session, query.order_by(col(Link.key)))
    return {link.key: link for link in session.exec(query)}


def link_of_planhat_id(
    session: Session, connection: str, model: str, planhat_id: str
) -> Link | None:
    """The link of a Planhat record (the one written last, should two keys name it)."""
    query = (
        select(Link)
        .where(Link.connection == connection, Link.model == model, Link.planhat_id == planhat_id)
        .order_by(col(Link.planhat_written_at).desc())
        .limit(1)
    )
    return session.exec(for_update(session, query)).first()


def gate(session: Session, link: Link | None, change: Change) -> str | None:
    """Why a change from a source goes no further (None: it goes on to the diff):
    "tombstoned", its record deleted in Planhat or by its source (unless the source says
    it created it again: the tombstone then goes); "echo", what we last wrote to that
    source, or what the source says is our own write (``Change.echo_of_ours``)."""
    if link is None:
        return None
    if link.quarantined_at is not None:
        return "quarantined"
    if link.deleted_at is not None:
        if change.action != "created":
            return "tombstoned"
        link.deleted_at = None
        session.add(link)
    if change.echo_of_ours:
        return "echo"
    # ``source_written_hash`` is of the Planhat-side fields the write-back wrote: a source
    # whose changes carry only those fields matches it here. One whose changes carry the
    # whole record (a helpdesk's ticket) does not, nor does a value the source spells
    # otherwise (Planhat closed, a helpdesk's solved): that echo leaves nothing to write after
    # conflicts.to_planhat (``ReadsBack``) and the diff against what we pushed.
    if unread_write_to_source(link) and (
        fields_hash(comparable(change.model, change.fields)) == link.source_written_hash
    ):
        return "echo"
    return None


def unread_write_to_source(link: Link) -> bool:
    """We wrote to the link's source and have read nothing from it since: equal to that
    write is an echo of it. Once the source said something else, equal is a real change."""
    if link.source_written_hash is None or link.source_written_at is None:
        return False
    return link.source_read_at is None or link.source_read_at <= link.source_written_at


def record_written(
    session: Session,
    connection: str,
    model: str,
    written: Sequence[tuple[Claimed, RecordResult]],
    rows: Mapping[str, OutboxItem],
    policy: FlushPolicy,
) -> set[str]:
    """The flush wrote these records to Planhat: each link's Planhat side now holds what
    was written (with the ``_id`` Planhat answered), its source side what was read. In the
    settle's transaction; ``rows``: the outbox rows sent (their events name the source).
    Returns the keys this quarantined: the settle drops their outbox rows last."""
    quarantined: set[str] = set()
    if not written:
        return quarantined
    now = utcnow()
    keys = [item.key for item, _ in written]
    known = links(session, connection, model, keys, lock=True)
    inbox_ids = {row.inbox_id for row in rows.values() if row.inbox_id is not None}
    sources: dict[int, str] = {}
    if inbox_ids:
        query = select(InboxEvent.id, InboxEvent.source).where(col(InboxEvent.id).in_(inbox_ids))
        sources = {inbox_id or 0: source for inbox_id, source in session.exec(query)}
    for item, result in written:
        link = known.get(item.key)
        if link is None:
            link = Link(
                connection=connection,
                model=model,
                key=item.key,
                key_field=item.key_field,
                key_value=str(item.record.get(item.key_field, "")),
            )
        row = rows.get(item.key)
        source = sources.get(row.inbox_id or 0) if row is not None else None
        link.source = source or link.source
        link.planhat_id = result.id or link.planhat_id
        seen = comparable(model, item.fields)
        link.planhat_fields = {**link.planhat_fields, **seen}
        link.planhat_written_hash, link.planhat_written_at = fields_hash(link.planhat_fields), now
        link.source_read_hash, link.source_read_at = fields_hash(seen), now
        session.add(link)
        if wrote(session, link, "planhat", policy, now):
            quarantined.add(link.key)
    return quarantined


def tombstone(session: Session, link: Link) -> None:
    """Deleted in Planhat: the link stays as a tombstone; what we pushed is forgotten (a
    record the source creates again is new), and a write waiting for it is dropped."""
    link.deleted_at = utcnow()
    session.add(link)
    for table in (RecordState, OutboxItem):
        row = session.get(table, (link.connection, link.model, link.key))
        if row is not None:
            session.delete(row)


def wrote(session: Session, link: Link, to: str, policy: FlushPolicy, now: datetime) -> bool:
    """A write to ``to`` ("planhat" or "source") is recorded on ``link``: a turn of
    direction counts a bounce, and one bounce too many quarantines the record (True: the
    write back waiting is dropped; the caller drops the outbox row, which it may hold)."""
    if link.last_written_to is not None and link.last_written_to != to:
        window = timedelta(minutes=policy.flap_minutes)
        if link.bounced_since is None or now - link.bounced_since > window:
            link.bounced_since, link.bounces = now, 1
        else:
            link.bounces += 1
    link.last_written_to = to
    session.add(link)
    if link.bounces > policy.flap_bounces and link.quarantined_at is None:
        _quarantine(session, link, policy, now)
        return True
    return False


def _quarantine(session: Session, link: Link, policy: FlushPolicy, now: datetime) -> None:
    link.quarantined_at = now
    session.add(link)
    waiting = session.get(WriteBackItem, (link.connection, link.source, link.model, link.key))
    if waiting is not None:
        session.delete(waiting)
    reason = (
        f"quarantined: its writes turned between Planhat and {link.source or 'its source'} "
        f"{link.bounces} times within {policy.flap_minutes:g} minutes (flapping); "
        "changes to it are dropped until dlq retry releases it"
    )
    session.add(
        DeadLetter(
            connection=link.connection,
            model=link.model,
            key=link.key,
            key_field=link.key_field,
            key_value=link.key_value,
            version=0,
            reason=reason,
            attempts=link.bounces,
            target=link.source or None,
            planhat_id=link.planhat_id,
            quarantine=True,
        )
    )
    log.warning("link.quarantined", model=link.model, key=link.key, bounces=link.bounces)


def release(session: Session, letter: DeadLetter) -> str:
    """``dlq retry`` of a quarantine: the record's changes flow again."""
    link = session.get(Link, (letter.connection, letter.model, letter.key), with_for_update=True)
    if link is None:
        return "released (its link is gone)"
    link.quarantined_at, link.bounced_since, link.bounces = None, None, 0
    link.last_written_to = None
    session.add(link)
    return "released from quarantine"
