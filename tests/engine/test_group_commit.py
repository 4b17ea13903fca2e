"""Group commit: concurrent webhooks share one INSERT, commit and enqueue, on SQLite and
PostgreSQL; every request still gets its own answer, and only once its group is committed."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from connectors.standard.verify import signed_headers
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import make_engine, migrate
from tests.engine.test_intake import rows
from tests.fakes import RecordingDispatcher
from worker.intake.group import Values
from worker.intake.inbox import DatabaseUnavailable, EventWriter, Inbox, writer_for
from worker.intake.receiver import create_web_app

SECRET = "whsec_" + base64.b64encode(b"group-commit-secret-012345").decode()
NOW = 1_790_000_000
BODY = b'{"model": "companies", "key": {"sourceId": "c1"}, "fields": {}, "version": 1}'


class CountingDispatcher(RecordingDispatcher):
    """Writes down each enqueue call: one per group."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[int]] = []

    async def ingest_async(self, inbox_ids: Sequence[int]) -> None:
        self.calls.append(list(inbox_ids))
        await super().ingest_async(inbox_ids)


class HeldWriter:
    """A real writer whose transaction starts only once ``release`` is set: a commit that
    blocks. Counts the groups it was given and their sizes."""

    def __init__(self, writer: EventWriter) -> None:
        self._writer = writer
        self.release = asyncio.Event()
        self.groups: list[int] = []
        self.committed = False

    async def write_many(self, events: Sequence[Values]) -> list[int | None]:
        self.groups.append(len(events))
        await self.release.wait()
        ids = await self._writer.write_many(events)
        self.committed = True
        return ids

    async def ready(self) -> None:
        await self._writer.ready()

    async def open(self) -> None:
        await self._writer.open()

    async def close(self) -> None:
        await self._writer.close()


async def store_all(inbox: Inbox, event_ids: Sequence[str]) -> list[int | None]:
    return list(
        await asyncio.gather(*(inbox.store("default", "standard", e, BODY) for e in event_ids))
    )


def test_duplicates_in_one_group_and_across_groups_are_answered_as_such_and_stored_once(
    engine: Engine,
) -> None:
    dispatcher = CountingDispatcher()
    # A window long enough that each gather below is one group.
    inbox = Inbox(writer_for(engine), dispatcher, window=0.2, size=64)

    async def scenario() -> tuple[list[int | None], list[int | None]]:
        await inbox.open()
        try:
            first = await store_all(inbox, ["e0", "e1", "e0", "e2", "e1", "e0"])
            second = await store_all(inbox, ["e2", "e3", "e0", "e3"])
        finally:
            await inbox.close()
        return first, second

    first, second = asyncio.run(scenario())

    # the first copy of each event gets its id, the others are duplicates
    assert [i is not None for i in first] == [True, True, False, True, False, False]
    assert [i is not None for i in second] == [False, True, False, False]
    stored = rows(engine)
    assert [row.event_id for row in stored] == ["e0", "e1", "e2", "e3"]
    assert {row.id for row in stored} == {i for i in first + second if i is not None}
    # one enqueue per group, of its new events only
    assert sorted(map(sorted, dispatcher.calls)) == sorted(
        [sorted(i for i in first if i is not None), [i for i in second if i is not None]]
    )


def test_a_group_holds_at_most_its_size_and_each_group_is_one_write(engine: Engine) -> None:
    held = HeldWriter(writer_for(engine))
    inbox = Inbox(held, RecordingDispatcher(), window=0.05, size=4)

    async def scenario() -> list[int | None]:
        await inbox.open()
        held.release.set()
        try:
            return await store_all(inbox, [f"e{n}" for n in range(10)])
        finally:
            await inbox.close()

    ids = asyncio.run(scenario())

    assert held.groups == [4, 4, 2]
    assert None not in ids
    assert len(rows(engine)) == 10


def test_a_group_the_database_fails_answers_every_request_unavailable_and_stores_nothing(
    postgres_url: str,
) -> None:
    # given a PostgreSQL inbox table locked against inserts for longer than the wait
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    wait = 0.5
    inbox = Inbox(writer_for(engine, wait=wait), RecordingDispatcher(), wait=wait, window=0.05)
    libpq = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as locker:
        locker.execute("TRUNCATE inbox_event")
        locker.execute("LOCK TABLE inbox_event IN ACCESS EXCLUSIVE MODE")

        async def scenario() -> list[Any]:
            await inbox.open()
            try:
                return await asyncio.gather(
                    *(inbox.store("default", "standard", f"e{n}", BODY) for n in range(5)),
                    return_exceptions=True,
                )
            finally:
                await inbox.close()

        # when a group of five is written while it is locked
        answers = asyncio.run(scenario())
        time.sleep(wait)  # the server has ended the statement by now (statement_timeout)
    try:
        # then every request is told the database is unavailable, and nothing was stored
        assert all(isinstance(answer, DatabaseUnavailable) for answer in answers), answers
        assert rows(engine) == []
    finally:
        engine.dispose()


def test_the_wait_is_bounded_for_the_group_being_written_and_those_behind_it(
    engine: Engine,
) -> None:
    held = HeldWriter(writer_for(engine))  # never released: a commit that hangs
    inbox = Inbox(held, RecordingDispatcher(), wait=0.3, window=0.01, size=2)

    async def scenario() -> tuple[list[Any], float]:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(inbox.store("default", "standard", f"e{n}", BODY) for n in range(5)),
            return_exceptions=True,
        )
        return answers, time.monotonic() - started

    answers, seconds = asyncio.run(scenario())

    assert all(isinstance(answer, DatabaseUnavailable) for answer in answers), answers
    assert seconds < 1.0
    assert held.groups == [2]  # the others waited their turn, within the bound
    assert rows(engine) == []


def test_no_webhook_is_answered_before_its_group_is_committed(engine: Engine) -> None:
    # given a receiver whose writer's commit blocks until released
    held = HeldWriter(writer_for(engine))
    dispatcher = RecordingDispatcher()
    tenant = Tenant(
        name="default", planhat_base_url="http://127.0.0.1:9", planhat_token="t",
        secrets={"standard": SECRET},
    )  # fmt: skip
    box = SecretBox(Fernet.generate_key().decode())
    inbox = Inbox(held, dispatcher, window=0.05)
    app = create_web_app(
        connections=Connections(engine, box=lambda: box, default=lambda: tenant),
        inbox=inbox,
        clock=lambda: NOW,
    )

    async def scenario() -> tuple[list[int], list[int]]:
        await inbox.open()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:

            async def post(n: int) -> httpx.Response:
                body = json.dumps(
                    {"model": "companies", "key": {"sourceId": f"c{n}"}, "fields": {},
                     "version": 1}
                ).encode()  # fmt: skip
                headers = signed_headers(SECRET, f"evt_{n % 3}", body, NOW)
                return await http.post("/webhooks/default/standard", content=body, headers=headers)

            posts = [asyncio.ensure_future(post(n)) for n in range(6)]
            # when the group has been handed to the writer, and its commit is held
            while not held.groups:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            # then nobody has been answered yet
            answered_early = [p for p in posts if p.done()]
            assert answered_early == [], [p.result().status_code for p in answered_early]
            held.release.set()
            answers = await asyncio.gather(*posts)
            assert held.committed
        await inbox.close()
        return [a.status_code for a in answers], list(held.groups)

    statuses, groups = asyncio.run(scenario())

    # and once it commits, one copy of each of the 3 events is accepted, its repeat a duplicate
    assert sorted(statuses) == [200, 200, 200, 202, 202, 202]
    assert {statuses[n] + statuses[n + 3] for n in range(3)} == {402}
    assert groups == [3]
    assert len(rows(engine)) == 3
    assert len(dispatcher.ingested) == 3


@pytest.mark.parametrize("window", [0.0, 0.002])
def test_one_webhook_alone_is_committed_without_waiting_for_company(
    engine: Engine, window: float
) -> None:
    inbox = Inbox(writer_for(engine), RecordingDispatcher(), window=window)

    async def scenario() -> tuple[list[int | None], float]:
        await inbox.open()
        try:
            started = time.monotonic()
            ids = await store_all(inbox, ["alone"])
            return ids, time.monotonic() - started
        finally:
            await inbox.close()

    [inbox_id], seconds = asyncio.run(scenario())

    assert inbox_id is not None
    # The window (2 ms) and one transaction; a writer waiting for company would wait for
    # ever. The margin is for a loaded CI machine (0.69 s seen at load average 8).
    assert seconds < 2.0
