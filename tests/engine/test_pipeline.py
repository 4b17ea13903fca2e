"""Ingest and diff: stale, unchanged and coalesced changes, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from structlog.testing import capture_logs

from connectors.change import fields_hash
from state.db import session_scope
from state.tables import DeadLetter, InboxEvent, OutboxItem, RecordState
from tests.engine.conftest import change, queue, standard_body, store
from worker.pipeline.ingest import Verdict, ingest, offer
from worker.pipeline.ingest_batch import ingest_many


def outbox(engine: Engine) -> list[OutboxItem]:
    with session_scope(engine) as session:
        return list(session.exec(select(OutboxItem)))


def pushed(engine: Engine, key: str = "sub_1", version: int = 5, **fields: object) -> None:
    """Record that Planhat already holds ``fields`` for license ``key`` at ``version``."""
    with session_scope(engine) as session:
        session.add(
            RecordState(
                connection="default",
                model="licenses",
                key=f"sourceId={key}",
                planhat_id="p1",
                fields=dict(fields),
                fields_hash=fields_hash(dict(fields)),
                version=version,
            )
        )


def test_a_new_change_is_queued(engine: Engine) -> None:
    with session_scope(engine) as session:
        verdict = offer(session, "default", change(mrr=10))

    assert verdict is Verdict.QUEUED
    [row] = outbox(engine)
    assert (row.key, row.key_field, row.key_value) == ("sourceId=sub_1", "sourceId", "sub_1")
    assert (row.fields, row.version) == ({"mrr": 10}, 1)


def test_a_change_older_than_what_was_pushed_is_stale(engine: Engine) -> None:
    pushed(engine, version=5, mrr=10)

    with session_scope(engine) as session:
        verdict = offer(session, "default", change(version=4, mrr=99))

    assert verdict is Verdict.STALE
    assert outbox(engine) == []


@pytest.mark.parametrize("batched", [False, True])
def test_a_stale_change_is_logged_with_both_versions_and_counted_on_its_event(
    engine: Engine, batched: bool
) -> None:
    pushed(engine, version=5, mrr=10)
    stale = store(engine, standard_body("licenses", "sub_1", 4, mrr=99, email="a@b.example"))
    fresh = store(engine, standard_body("licenses", "sub_1", 6, mrr=20))

    with capture_logs() as logs, session_scope(engine) as session:
        if batched:
            ingest_many(session, [stale, fresh])
        else:
            ingest(session, stale)
            ingest(session, fresh)

    [line] = [entry for entry in logs if entry["event"] == "change.stale"]
    assert (line["version"], line["pushed_version"]) == (4, 5)
    assert (line["key"], line["model"], line["connection"]) == ("sourceId=sub_1", "licenses",
                                                                "default")  # fmt: skip
    assert line["log_level"] == "info"
    # versions, never the values (the event id is random hex: "99" may be in it)
    assert 99 not in line.values()
    assert "mrr" not in line
    assert "fields" not in line
    assert "a@b.example" not in str(line)
    with session_scope(engine) as session:
        counted = {e.id: e.stale_changes for e in session.exec(select(InboxEvent))}
    assert counted == {stale: 1, fresh: 0}


def test_a_change_planhat_already_has_costs_nothing_and_moves_the_version(engine: Engine) -> None:
    pushed(engine, version=5, mrr=10, product="Pro")

    with session_scope(engine) as session:
        verdict = offer(session, "default", change(version=7, mrr=10))

    assert verdict is Verdict.UNCHANGED
    assert outbox(engine) == []
    with session_scope(engine) as session:
        assert offer(session, "default", change(version=6, mrr=11)) is Verdict.STALE


def test_later_changes_coalesce_into_one_row(engine: Engine) -> None:
    queue(engine, change(version=1, mrr=10), change(version=2, mrr=20, product="Pro"))

    [row] = outbox(engine)
    assert (row.fields, row.version, row.revision) == ({"mrr": 20, "product": "Pro"}, 2, 2)


def test_an_older_change_only_fills_fields_the_pending_write_lacks(engine: Engine) -> None:
    queue(engine, change(version=3, mrr=30), change(version=2, mrr=20, product="Pro"))

    [row] = outbox(engine)
    assert (row.fields, row.version) == ({"mrr": 30, "product": "Pro"}, 3)


def test_a_change_undone_before_the_flush_leaves_nothing_to_write(engine: Engine) -> None:
    pushed(engine, version=1, mrr=10)

    queue(engine, change(version=2, mrr=20), change(version=3, mrr=10))

    assert outbox(engine) == []


def test_a_duplicate_change_is_unchanged(engine: Engine) -> None:
    queue(engine, change(version=2, mrr=20))

    with session_scope(engine) as session:
        verdict = offer(session, "default", change(version=2, mrr=20))

    assert verdict is Verdict.UNCHANGED
    assert [row.revision for row in outbox(engine)] == [1]


def test_ingest_turns_an_event_into_outbox_rows_once(engine: Engine) -> None:
    inbox_id = store(engine, standard_body("licenses", "sub_1", "2026-01-01T00:00:00Z", mrr=5))

    with session_scope(engine) as session:
        first = ingest(session, inbox_id)
    with session_scope(engine) as session:
        second = ingest(session, inbox_id)

    assert (first.queued, first.models, first.connection) == (1, {"licenses"}, "default")
    assert second.queued == 0
    with session_scope(engine) as session:
        event = session.get(InboxEvent, inbox_id)
        assert event is not None
        assert event.status == "done"
    assert len(outbox(engine)) == 1


def test_an_event_that_cannot_be_mapped_becomes_a_dead_letter_with_the_reason(
    engine: Engine,
) -> None:
    inbox_id = store(engine, b'{"model": "licences", "key": {"sourceId": "x"}, "version": 1}')

    with session_scope(engine) as session:
        report = ingest(session, inbox_id)

    assert report.queued == 0
    with session_scope(engine) as session:
        [letter] = session.exec(select(DeadLetter)).all()
        event = session.get(InboxEvent, inbox_id)
    assert "unknown Planhat model 'licences'" in letter.reason
    assert letter.inbox_id == inbox_id
    assert event is not None
    assert event.status == "failed"


def test_a_stored_event_is_kept_once_per_event_id(engine: Engine) -> None:
    body = standard_body("licenses", "sub_1", 1, mrr=5)
    store(engine, body, event_id="evt_1")

    from state.inbox import store_event

    with session_scope(engine) as session:
        again = store_event(
            session, connection="default", source="standard", event_id="evt_1", body=body
        )

    assert again is None


# --- order independence (the property itself: tests/engine/test_merge.py) -------------


def test_every_permutation_of_three_changes_coalesces_alike(sqlite_engine: Engine) -> None:
    changes = [
        change(version=1, mrr=1, product="A"),
        change(version=2, mrr=2),
        change(version=3, status="x"),
    ]
    seen = set()
    for order in itertools.permutations(changes):
        with session_scope(sqlite_engine) as session:
            for row in session.exec(select(OutboxItem)):
                session.delete(row)
        queue(sqlite_engine, *order)
        [row] = outbox(sqlite_engine)
        seen.add((tuple(sorted(row.fields.items())), row.version))
    assert seen == {((("mrr", 2), ("product", "A"), ("status", "x")), 3)}


def test_a_newer_change_with_the_same_value_still_outranks_an_older_one(
    sqlite_engine: Engine,
) -> None:
    # Found by Hypothesis: the v5 change repeats the pending value, and must still raise
    # the field's version, or the older v4 arriving last would win.
    queue(
        sqlite_engine,
        change(version=3, mrr=0),
        change(version=6),
        change(version=5, mrr=0),
        change(version=4, mrr=1),
    )

    [row] = outbox(sqlite_engine)

    assert (row.fields, row.field_versions, row.version) == ({"mrr": 0}, {"mrr": 5}, 6)


def test_version_strings_order_as_times(engine: Engine) -> None:
    older = store(engine, standard_body("licenses", "s", "2026-01-01T00:00:00Z", mrr=1))
    newer = store(engine, standard_body("licenses", "s", "2026-01-02T00:00:00+00:00", mrr=2))
    for inbox_id in (newer, older):
        with session_scope(engine) as session:
            ingest(session, inbox_id)

    [row] = outbox(engine)
    assert row.fields == {"mrr": 2}


@pytest.mark.parametrize("version", ["yesterday", True, None])
def test_a_bad_version_is_a_mapping_error(engine: Engine, version: object) -> None:
    import json

    body = json.dumps({"model": "licenses", "key": {"sourceId": "s"}, "version": version})
    with session_scope(engine) as session:
        ingest(session, store(engine, body.encode()))
    with session_scope(engine) as session:
        [letter] = session.exec(select(DeadLetter)).all()
    assert "version" in letter.reason


def test_a_batch_ingests_like_one_event_at_a_time(engine: Engine) -> None:
    # given the same events, ingested one by one and as one batch
    from worker.pipeline.ingest_batch import ingest_many

    bodies = [
        standard_body("licenses", "a", 2, mrr=20),
        standard_body("licenses", "a", 1, mrr=10, product="Pro"),
        standard_body("licenses", "b", 1, mrr=5),
        b'{"model": "nope", "key": {"sourceId": "x"}, "version": 1}',
        standard_body("licenses", "a", 3, status="active"),
    ]
    pushed(engine, key="b", version=1, mrr=5)  # b is already in Planhat
    ids = [store(engine, body) for body in bodies]

    with session_scope(engine) as session:
        reports = ingest_many(session, ids)

    # then: one row per record, merged per field, b unchanged, the bad event buried
    assert [r.queued for r in reports] == [0, 1, 1, 0, 1]  # the failed event reports first
    [row] = outbox(engine)
    assert (row.key, row.fields, row.version) == (
        "sourceId=a",
        {"mrr": 20, "product": "Pro", "status": "active"},
        3,
    )
    with session_scope(engine) as session:
        statuses = [session.get(InboxEvent, i).status for i in ids]  # type: ignore[union-attr]
        assert len(session.exec(select(DeadLetter)).all()) == 1
    assert statuses == ["done", "done", "done", "failed", "done"]
    # and a second batch of the same ids does nothing
    with session_scope(engine) as session:
        assert ingest_many(session, ids) == []


def test_an_event_with_nothing_to_map_is_kept_as_ignored_and_a_failed_one_is_buried_once(
    engine: Engine,
) -> None:
    from state.inbox import store_event

    with session_scope(engine) as session:  # a Stripe event type we do not map
        unmapped = store_event(
            session,
            connection="default",
            source="stripe",
            event_id="evt_refund",
            body=b'{"id": "evt_refund", "type": "charge.refunded", "created": 1, "data": {}}',
        )
    assert unmapped is not None
    bad = store(engine, b'{"model": "nope", "key": {"sourceId": "x"}, "version": 1}')
    for inbox_id in (unmapped, bad, bad):  # the last: a duplicate task for a buried event
        with session_scope(engine) as session:
            ingest(session, inbox_id)

    with session_scope(engine) as session:
        letters = session.exec(select(DeadLetter)).all()
        ignored = session.get(InboxEvent, unmapped)
    assert len(letters) == 1
    assert ignored is not None
    assert (ignored.status, ignored.error) == ("ignored", None)
    assert outbox(engine) == []
