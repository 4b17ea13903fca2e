"""The intake path: every inbox writer runs one statement, on SQLite and PostgreSQL; the
dispatcher's enqueue protocol on the real Redis, from sync and asyncio callers alike."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import Engine
from sqlmodel import select

from state.db import session_scope
from state.inbox import store_event
from state.tables import InboxEvent
from tests.engine.services import TEST_REDIS_URL
from tests.fakes import RecordingDispatcher
from worker.intake.inbox import Inbox, PostgresWriter, ThreadedWriter, writer_for
from worker.runtime.settings import EngineSettings, Settings

BODY = b'{"model": "companies", "key": {"sourceId": "c1"}, "fields": {}, "version": 1}'


def rows(engine: Engine) -> list[InboxEvent]:
    with session_scope(engine) as session:
        return list(session.exec(select(InboxEvent).order_by(InboxEvent.event_id)))


async def store_twice(inbox: Inbox, event_id: str) -> tuple[int | None, int | None]:
    await inbox.open()
    try:
        first = await inbox.store("default", "standard", event_id, BODY)
        again = await inbox.store("default", "standard", event_id, BODY)
    finally:
        await inbox.close()
    return first, again


def test_the_inbox_commits_an_event_once_hands_it_on_and_a_redelivery_gets_none(
    engine: Engine,
) -> None:
    dispatcher = RecordingDispatcher()

    first, again = asyncio.run(store_twice(Inbox(writer_for(engine), dispatcher), "evt_1"))

    assert first is not None
    assert again is None
    assert dispatcher.ingested == [first]
    [row] = rows(engine)
    assert (row.id, row.event_id, row.body, row.status) == (first, "evt_1", BODY, "pending")
    assert row.dispatched_at is not None  # its task is sent with the commit: no second write


def test_both_writers_store_the_row_store_event_stores(engine: Engine) -> None:
    # given the same event stored by a session, and by each writer the database allows
    with session_scope(engine) as session:
        store_event(
            session,
            connection="default",
            source="standard",
            event_id="by-session",
            body=BODY,
            dispatched=True,
        )
    writers: list[Any] = [ThreadedWriter(engine)]
    if engine.dialect.name == "postgresql":
        writers.append(PostgresWriter(engine))
    for number, writer in enumerate(writers):
        asyncio.run(store_twice(Inbox(writer, RecordingDispatcher()), f"by-writer-{number}"))

    # then the rows differ in their ids and times only
    def same(row: InboxEvent) -> tuple[Any, ...]:
        times = (row.received_at, row.next_attempt_at, row.dispatched_at)
        assert row.received_at.tzinfo is not None
        assert len(set(times)) == 1
        return (row.connection, row.source, row.body, row.status, row.attempts, row.error)

    stored = rows(engine)
    assert len(stored) == 1 + len(writers)
    assert {same(row) for row in stored} == {same(stored[0])}


class BrokerDown(RecordingDispatcher):
    async def ingest_async(self, inbox_ids: Sequence[int]) -> None:
        raise ConnectionError("broker down")


def test_an_event_whose_enqueue_fails_is_still_stored_for_the_sweeper(engine: Engine) -> None:
    first, again = asyncio.run(store_twice(Inbox(writer_for(engine), BrokerDown()), "evt_1"))

    assert (first is not None, again) == (True, None)
    [row] = rows(engine)
    assert row.status == "pending"


def scheduled_tasks(client: redis.Redis) -> list[str]:
    """The tasks waiting in Celery's ``ingest`` queue, by name."""
    messages = client.lrange("ingest", 0, -1)
    return [json.loads(message)["headers"]["task"] for message in messages]


def test_queued_ids_share_one_batch_task_whether_sent_from_threads_or_the_event_loop(
    redis_client: redis.Redis,
) -> None:
    # Imported here, not at collection: worker.runtime.tasks reads REDIS_URL once, when
    # first imported (tests/engine/test_dlq_cli.py needs it unset until then).
    from worker.runtime.tasks import INGEST_QUEUE, INGEST_SCHEDULED, CeleryDispatcher, make_celery

    celery = make_celery(Settings(redis_url=TEST_REDIS_URL), EngineSettings())

    async def scenario() -> None:
        aclient = AsyncRedis.from_url(TEST_REDIS_URL)
        dispatcher = CeleryDispatcher(celery, redis_client, aclient)
        try:
            # when ids arrive from a thread and from the event loop
            dispatcher.ingest([1, 2])
            await dispatcher.ingest_async([3])

            # then they wait in one list, for one batch task
            assert redis_client.lrange(INGEST_QUEUE, 0, -1) == [b"1", b"2", b"3"]
            assert scheduled_tasks(redis_client) == ["planhat_sync.ingest_batch"]

            # and that task takes them in batches, then gives up its flag when none is left
            assert dispatcher.take_ingest_batch(2) == [1, 2]
            assert dispatcher.take_ingest_batch(2) == [3]
            assert dispatcher.take_ingest_batch(2) == []
            assert not redis_client.exists(INGEST_SCHEDULED)

            # so the next id schedules a new task
            await dispatcher.ingest_async([4])
            assert scheduled_tasks(redis_client) == ["planhat_sync.ingest_batch"] * 2
            await dispatcher.ready()
        finally:
            await aclient.aclose()

    try:
        asyncio.run(scenario())
    finally:
        celery.close()
