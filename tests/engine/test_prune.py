"""Pruning (state/prune.py), on SQLite and PostgreSQL: old processed events and superseded
dead letters go; pending work, recent rows and whatever a dead letter or an outbox row still
names stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import select

from state.db import session_scope
from state.prune import prune
from state.tables import DeadLetter, InboxEvent, RecordState, utcnow
from tests.engine.conftest import change, fields_hash, store
from worker.pipeline.ingest import bury_event, offer

RETENTION = timedelta(days=30)
OLD = 40  # days
RECENT = 2


def event(
    engine: Engine,
    status: str,
    *,
    age: float,
    processed: float | None = None,
    body: bytes = b'{"a": "raw body"}',
) -> int:
    """A stored event received ``age`` days ago and, unless pending, processed ``processed``
    (else ``age``) days ago."""
    inbox_id = store(engine, body)
    with session_scope(engine) as session:
        row = session.get(InboxEvent, inbox_id)
        assert row is not None
        row.status = status
        row.received_at = utcnow() - timedelta(days=age)
        if status != "pending":
            row.processed_at = utcnow() - timedelta(days=age if processed is None else processed)
        session.add(row)
    return inbox_id


def letter(
    engine: Engine,
    *,
    age: float,
    key: str = "",
    version: int = 1,
    inbox_id: int | None = None,
    target: str | None = None,
) -> int:
    """A dead letter ``age`` days old: a record's (``key``) or, without one, an event's."""
    with session_scope(engine) as session:
        row = DeadLetter(
            connection="default",
            model="licenses" if key else "",
            key=f"sourceId={key}" if key else f"event:standard:{inbox_id}",
            key_field="sourceId" if key else "",
            key_value=key,
            version=version,
            reason="refused",
            inbox_id=inbox_id,
            created_at=utcnow() - timedelta(days=age),
            target=target,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def pushed(engine: Engine, key: str, version: int) -> None:
    """Planhat has ``version`` of the license ``key`` (as a flush leaves it)."""
    with session_scope(engine) as session:
        session.add(RecordState(connection="default", model="licenses", key=f"sourceId={key}",
                                fields={"v": version}, fields_hash=fields_hash({"v": version}),
                                version=version))  # fmt: skip


def events_left(engine: Engine) -> set[int]:
    with session_scope(engine) as session:
        return {i for i in session.exec(select(InboxEvent.id)) if i is not None}


def letters_left(engine: Engine) -> set[int]:
    with session_scope(engine) as session:
        return {i for i in session.exec(select(DeadLetter.id)) if i is not None}


def test_old_processed_events_are_pruned_but_pending_and_recent_ones_stay(engine: Engine) -> None:
    # given
    done = event(engine, "done", age=OLD)
    ignored = event(engine, "ignored", age=OLD)
    failed_and_dropped = event(engine, "failed", age=OLD)  # its dead letter was dropped
    pending = event(engine, "pending", age=OLD)  # never processed: work still to do
    recent = event(engine, "done", age=RECENT)
    replayed = event(engine, "done", age=OLD, processed=RECENT)  # processed again lately

    # when
    pruned = prune(engine, older_than=RETENTION)

    # then
    assert pruned.inbox_events == 3
    assert events_left(engine) == {pending, recent, replayed}
    assert {done, ignored, failed_and_dropped}.isdisjoint(events_left(engine))


def test_old_events_an_outbox_row_or_a_dead_letter_names_are_kept(engine: Engine) -> None:
    # given an old event whose change still waits in the outbox
    queued = event(engine, "done", age=OLD)
    with session_scope(engine) as session:
        offer(session, "default", change(key="l-1", seats=3), inbox_id=queued)
    # an old event that could not be mapped, its dead letter not yet retried or dropped
    buried = event(engine, "failed", age=OLD)
    with session_scope(engine) as session:
        row = session.get(InboxEvent, buried)
        assert row is not None
        bury_event(session, row, "mapping failed: no model")
        row.processed_at = utcnow() - timedelta(days=OLD)
    # an old event whose record Planhat refused
    refused = event(engine, "done", age=OLD)
    letter(engine, age=OLD, key="l-2", inbox_id=refused)

    # when
    pruned = prune(engine, older_than=RETENTION)

    # then
    assert pruned.inbox_events == 0
    assert events_left(engine) == {queued, buried, refused}


def test_only_superseded_dead_letters_are_pruned_and_their_events_with_them(
    engine: Engine,
) -> None:
    # given a refused license v1 of an old event, and v2 of it since written to Planhat
    source = event(engine, "done", age=OLD)
    superseded = letter(engine, age=OLD, key="l-1", version=1, inbox_id=source)
    pushed(engine, "l-1", version=2)
    # dead letters nothing resolved: the same version pushed, no record at all, an event's
    same_version = letter(engine, age=OLD, key="l-2", version=2)
    pushed(engine, "l-2", version=2)
    unknown = letter(engine, age=OLD, key="l-3", version=1)
    unmappable = letter(engine, age=OLD, inbox_id=event(engine, "failed", age=OLD))
    # superseded, but recent
    recent = letter(engine, age=RECENT, key="l-4", version=1)
    pushed(engine, "l-4", version=5)
    # a write back to a source: its version is Planhat's, and only retry or drop resolve it
    written_back = letter(engine, age=OLD, key="l-5", version=1, target="standard")
    pushed(engine, "l-5", version=2)

    # when
    pruned = prune(engine, older_than=RETENTION)

    # then
    assert (pruned.dead_letters, pruned.dead_letters_kept) == (1, 4)
    assert letters_left(engine) == {same_version, unknown, unmappable, recent, written_back}
    assert superseded not in letters_left(engine)
    assert source not in events_left(engine)  # nothing names it any more
    assert pruned.inbox_events == 1


def test_a_backlog_is_pruned_in_batches_past_the_rows_that_stay(engine: Engine) -> None:
    # given old events, every third one still named by a dead letter
    old = [event(engine, "done", age=OLD) for _ in range(25)]
    kept = set(old[::3])
    for inbox_id in kept:
        letter(engine, age=RECENT, key=f"l-{inbox_id}", inbox_id=inbox_id)
    fresh = event(engine, "done", age=RECENT)

    # when: four rows to a transaction
    pruned = prune(engine, older_than=RETENTION, batch=4)

    # then
    assert pruned.inbox_events == 25 - len(kept)
    assert events_left(engine) == kept | {fresh}


def test_big_bodies_are_pruned_a_few_at_a_time(engine: Engine) -> None:
    # given old events of about 1 KiB each, and room for two of them in a transaction
    old = [event(engine, "done", age=OLD, body=b"x" * 1000) for _ in range(5)]
    fresh = event(engine, "done", age=RECENT, body=b"x" * 1000)

    pruned = prune(engine, older_than=RETENTION, batch=100, batch_bytes=2100)

    assert pruned.inbox_events == len(old)
    assert events_left(engine) == {fresh}


def test_nothing_old_prunes_nothing(engine: Engine) -> None:
    event(engine, "done", age=RECENT)

    pruned = prune(engine, older_than=RETENTION)

    assert (pruned.inbox_events, pruned.dead_letters, pruned.dead_letters_kept) == (0, 0, 0)
    assert len(events_left(engine)) == 1
