"""An event's story, or a record's, told from the state tables: received → mapped →
coalesced → sent → Planhat ``_id``, or where and why it stopped.

Which changes an event made is not stored: the mapping is pure, so it is run again on
the stored body (or detail), with the connection's options as they are now. The rest is
read from the rows each step leaves: the outbox row (waiting; coalesced when a later
event's change merged into it), the record state (what Planhat confirmed, at which
version), the dead letters and the link.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Engine, or_
from sqlmodel import Session, col, select

from connectors.change import Change, MappingError
from connectors.sources import SOURCES, OptionError, source_options
from state.db import session_scope
from state.tables import DeadLetter, InboxEvent, Link, OutboxItem, RecordState

MAX_FOUND = 20  # events or records a search shows


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    stage: str  # received, mapped, ignored, failed, coalesced, waiting, sent, dropped, dead
    text: str
    when: datetime | None = None
    ok: bool = True  # False: this is where it stopped, and needs a look
    event_id: str | None = None  # another event this step names (its story is a link)
    letter_id: int | None = None  # a dead letter this step names


@dataclass(frozen=True, slots=True, kw_only=True)
class Story:
    title: str  # "event evt_1 (<source> → default)", "companies sourceId=acme (default)"
    steps: tuple[Step, ...]


def search(
    engine: Engine, query: str, *, options_of: Callable[[str], Mapping[str, str]]
) -> list[Story]:
    """Stories for an event id, else for records whose key is ``query`` (``sourceId=acme``)
    or ends in ``=query`` (``acme``)."""
    query = query.strip()
    if not query:
        return []
    # Options first, in no transaction of ours: reading them may open one of its own, and
    # SQLite's write lock is taken in turn (state/db.py), so nesting them would wait.
    with session_scope(engine) as session:
        named = select(InboxEvent.connection).where(InboxEvent.event_id == query).distinct()
        connections = list(session.exec(named))
    options = {name: options_of(name) for name in connections}
    with session_scope(engine) as session:
        events = list(
            session.exec(
                select(InboxEvent)
                .where(InboxEvent.event_id == query)
                .order_by(col(InboxEvent.id))
                .limit(MAX_FOUND)
            )
        )
        if events:
            return [_event_story(session, event, options[event.connection]) for event in events]
        return [
            _record_story(session, connection, model, key)
            for connection, model, key in _records(session, query)
        ]


def _event_story(session: Session, event: InboxEvent, options: Mapping[str, str]) -> Story:
    title = f"event {event.event_id} ({event.source} → {event.connection})"
    steps = [
        Step(stage="received", when=event.received_at, text=f"stored as inbox event {event.id}")
    ]
    if event.status == "pending":
        wait = f"waiting to be processed (attempts {event.attempts})"
        error = f"; last error: {event.error}" if event.error else ""
        steps.append(Step(stage="waiting", when=event.next_attempt_at, text=wait + error))
        return Story(title=title, steps=tuple(steps))
    if event.status == "failed":
        letter = session.exec(
            select(DeadLetter.id).where(DeadLetter.inbox_id == event.id).limit(1)
        ).first()
        steps.append(
            Step(
                stage="failed",
                when=event.processed_at,
                text=f"could not be mapped or completed: {event.error}",
                ok=False,
                letter_id=letter,
            )
        )
        return Story(title=title, steps=tuple(steps))
    if event.status == "ignored":
        text = "mapped to no change: nothing for Planhat (the source's event is not synced)"
        steps.append(Step(stage="ignored", when=event.processed_at, text=text))
        return Story(title=title, steps=tuple(steps))
    try:
        changes = _changes(event, options)
    except (MappingError, OptionError) as error:
        text = f"processed, but its mapping fails now ({error}): the changes it made are unknown"
        steps.append(Step(stage="mapped", when=event.processed_at, text=text, ok=False))
        return Story(title=title, steps=tuple(steps))
    keys = ", ".join(f"{change.model} {change.record_key}" for change in changes)
    steps.append(
        Step(
            stage="mapped",
            when=event.processed_at,
            text=f"{len(changes)} change(s): {keys}",
        )
    )
    for change in changes:
        steps.extend(_fate(session, event, change))
    return Story(title=title, steps=tuple(steps))


def _changes(event: InboxEvent, options: Mapping[str, str]) -> list[Change]:
    source = SOURCES.get(event.source)
    if source is None:
        raise MappingError(f"no source named {event.source!r}")
    body = event.detail if event.detail is not None else event.body
    return source.changes(body, event.event_id, source_options(source, options))


def _fate(session: Session, event: InboxEvent, change: Change) -> list[Step]:
    """What became of one change of ``event``."""
    connection, model, key = event.connection, change.model, change.record_key
    what = f"{model} {key}"
    if change.origin == "planhat":
        return [Step(stage="mapped", text=f"{what}: a change made in Planhat (reverse path)")]
    steps: list[Step] = []
    pending = session.get(OutboxItem, (connection, model, key))
    if pending is not None:
        if pending.event_id != event.event_id:
            steps.append(
                Step(
                    stage="coalesced",
                    when=pending.changed_at,
                    text=f"{what}: merged into the pending write of a later event",
                    event_id=pending.event_id,
                )
            )
        error = f"; last error: {pending.last_error}" if pending.last_error else ""
        steps.append(
            Step(
                stage="waiting",
                when=pending.next_attempt_at,
                text=f"{what}: waiting for the flush (attempts {pending.attempts}){error}",
                ok=not pending.last_error,
            )
        )
    for letter in _letters(session, connection, model, key):
        steps.append(_dead(letter, what))
    pushed = session.get(RecordState, (connection, model, key))
    if pushed is not None:
        steps.append(_sent(pushed, change, what))
    elif pending is None and not steps:
        text = f"{what}: dropped, nothing sent (an echo, a deleted record, or overruled)"
        steps.append(Step(stage="dropped", text=text))
    return steps


def _sent(pushed: RecordState, change: Change, what: str) -> Step:
    where = f"Planhat _id {pushed.planhat_id}"
    if pushed.version == change.version:
        return Step(stage="sent", when=pushed.pushed_at, text=f"{what}: sent; {where}")
    if pushed.version > change.version:
        text = (
            f"{what}: Planhat has a newer version ({pushed.version} > {change.version}): this "
            f"change was stale, or a later one carried it; {where}"
        )
        return Step(stage="sent", when=pushed.pushed_at, text=text)
    text = (
        f"{what}: dropped, Planhat already had these values (no call); last sent version "
        f"{pushed.version}, {where}"
    )
    return Step(stage="dropped", when=pushed.pushed_at, text=text)


def _dead(letter: DeadLetter, what: str) -> Step:
    target = f" (writing back to {letter.target})" if letter.target else ""
    return Step(
        stage="dead",
        when=letter.created_at,
        text=f"{what}: dead letter {letter.id}{target}: {letter.reason}",
        ok=False,
        letter_id=letter.id,
    )


def _letters(session: Session, connection: str, model: str, key: str) -> list[DeadLetter]:
    return list(
        session.exec(
            select(DeadLetter)
            .where(
                DeadLetter.connection == connection,
                DeadLetter.model == model,
                DeadLetter.key == key,
            )
            .order_by(col(DeadLetter.id))
        )
    )


def _records(session: Session, query: str) -> list[tuple[str, str, str]]:
    """(connection, model, key) of records whose key is ``query`` or ends in ``=query``."""
    found: set[tuple[str, str, str]] = set()
    for table in (RecordState, OutboxItem, DeadLetter, Link):
        matches = or_(col(table.key) == query, col(table.key).endswith(f"={query}"))
        rows = session.exec(
            select(table.connection, table.model, table.key).where(matches).limit(MAX_FOUND)
        )
        found.update((row[0], row[1], row[2]) for row in rows)
    return sorted(found)[:MAX_FOUND]


def _record_story(session: Session, connection: str, model: str, key: str) -> Story:
    title = f"{model or '(event)'} {key} ({connection})"
    steps: list[Step] = []
    pending = session.get(OutboxItem, (connection, model, key))
    if pending is not None:
        error = f"; last error: {pending.last_error}" if pending.last_error else ""
        steps.append(
            Step(
                stage="waiting",
                when=pending.enqueued_at,
                text=f"a write waits for the flush (version {pending.version}, "
                f"attempts {pending.attempts}, changed {pending.revision} time(s)){error}",
                ok=not pending.last_error,
                event_id=pending.event_id,
            )
        )
    for letter in _letters(session, connection, model, key):
        steps.append(_dead(letter, "") if letter.event_id is None else _named(letter))
    pushed = session.get(RecordState, (connection, model, key)) if model else None
    if pushed is not None:
        steps.append(
            Step(
                stage="sent",
                when=pushed.pushed_at,
                text=f"Planhat has version {pushed.version}: _id {pushed.planhat_id}",
            )
        )
    link = session.get(Link, (connection, model, key)) if model else None
    if link is not None and link.deleted_at is not None:
        steps.append(
            Step(stage="dropped", when=link.deleted_at, text="deleted in Planhat: a tombstone")
        )
    return Story(title=title, steps=tuple(steps))


def _named(letter: DeadLetter) -> Step:
    step = _dead(letter, f"event {letter.event_id}")
    return replace(step, ok=False, letter_id=letter.id, event_id=letter.event_id)
