"""The receiver while its database hiccups: a webhook waits a bounded time, then is a 503
with Retry-After that stored nothing (the sender retries); a database that dropped every
connection costs no 500; ``/readyz`` says so, within the same bound. On the real
PostgreSQL (the production writer: an asyncio psycopg pool) and on SQLite."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlalchemy.engine import make_url
from sqlmodel import select

from connectors.standard.verify import signed_headers
from state.connections import Connections, add_connection
from state.crypto import SecretBox
from state.db import make_engine, migrate, session_scope
from state.tables import InboxEvent
from tests.engine.services import fresh_postgres_database
from tests.fakes import RecordingDispatcher
from worker.intake.group import Values
from worker.intake.inbox import Inbox, ThreadedWriter, writer_for
from worker.intake.limits import ReceiverLimits
from worker.intake.receiver import create_web_app

SECRET = "whsec_" + base64.b64encode(b"database-hiccup-secret-00").decode()
BODY = b'{"model": "companies", "key": {"sourceId": "co_1"}, "version": 1}'
WAIT = 1.0  # the bound under test: how long a webhook waits for the database


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class SlowWriter(ThreadedWriter):
    """A database that answers, but only after the receiver's bound."""

    async def write_many(self, events: Sequence[Values]) -> list[int | None]:
        await asyncio.sleep(WAIT + 0.5)
        return await super().write_many(events)


class Receiver:
    """The receiver as ``app_from_environment`` wires it, on ``url``, for the stored
    connection ``acme``, looked up on every request (no cache: the lookup is a query too)."""

    def __init__(self, url: str, slow: bool = False) -> None:
        self.url = url
        self.engine: Engine = make_engine(url, pre_ping=True)
        box = SecretBox(Fernet.generate_key().decode())
        with contextlib.suppress(Exception):  # an unreachable database has no table to add to
            add_connection(
                self.engine, box, name="acme", planhat_base_url="http://127.0.0.1:9",
                planhat_token="t", secrets={"standard": SECRET},
            )  # fmt: skip
        self.dispatcher = RecordingDispatcher()
        writer = SlowWriter(self.engine) if slow else writer_for(self.engine, wait=WAIT)
        self.inbox = Inbox(writer, self.dispatcher, wait=WAIT)

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.inbox.open()
            try:
                yield
            finally:
                await self.inbox.close()

        self.app = create_web_app(
            connections=Connections(self.engine, box=lambda: box, default=lambda: None, ttl=0),
            inbox=self.inbox,
            lifespan=lifespan,
            limits=ReceiverLimits(database_wait=WAIT),
        )

    def post(self, http: TestClient, event_id: str) -> tuple[Any, float]:
        started = time.monotonic()
        answer = http.post(
            "/webhooks/acme/standard",
            content=BODY,
            headers=signed_headers(SECRET, event_id, BODY, int(time.time())),
        )
        return answer, time.monotonic() - started

    def stored(self) -> list[str]:
        with session_scope(self.engine) as session:
            return list(session.exec(select(InboxEvent.event_id)))

    def count(self) -> int:
        with session_scope(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(InboxEvent)).one())


@pytest.fixture
def postgres() -> Iterator[str]:
    with fresh_postgres_database("phs_hiccup") as url:
        yield url


@contextlib.contextmanager
def held_lock(url: str, table: str, release_after: float) -> Iterator[psycopg.Connection]:
    """``LOCK TABLE <table> IN ACCESS EXCLUSIVE MODE`` held by another session, released
    on leaving, or after ``release_after`` seconds at the latest (so nothing hangs)."""
    locker = psycopg.connect(libpq(url))
    locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # opens a transaction
    timer = threading.Timer(release_after, locker.rollback)
    timer.start()
    try:
        yield locker
    finally:
        timer.cancel()
        with contextlib.suppress(psycopg.Error):
            locker.rollback()
        locker.close()


def test_a_webhook_that_waits_on_a_locked_inbox_is_503_with_retry_after_and_stores_nothing(
    postgres: str,
) -> None:
    receiver = Receiver(postgres)
    with TestClient(receiver.app, raise_server_exceptions=False) as http:
        with held_lock(postgres, "inbox_event", release_after=8):
            # when the inbox table stays locked longer than the bound
            answer, took = receiver.post(http, "evt_locked")
            ready_started = time.monotonic()
            ready = http.get("/readyz")
            ready_took = time.monotonic() - ready_started

        # then the webhook was answered 503 within the bound, telling the sender when
        assert answer.status_code == 503, answer.text
        assert "database" in answer.json()["error"]
        assert int(answer.headers["retry-after"]) > 0
        assert took < WAIT + 1.0
        # and /readyz said so, within the bound too
        assert (ready.status_code, ready_took < WAIT + 1.0) == (503, True)
        # and once the lock is gone, nothing was stored, and the sender's retry is
        time.sleep(WAIT)  # past the statement's own timeout
        assert receiver.stored() == []
        retry, _ = receiver.post(http, "evt_locked")
        assert retry.status_code == 202
        assert receiver.stored() == ["evt_locked"]
        assert http.get("/readyz").status_code == 200
    receiver.engine.dispose()


def test_after_the_database_dropped_every_connection_the_next_webhook_is_stored(
    postgres: str,
) -> None:
    receiver = Receiver(postgres)
    with TestClient(receiver.app, raise_server_exceptions=False) as http:
        first, _ = receiver.post(http, "evt_before")
        assert first.status_code == 202
        assert http.get("/readyz").status_code == 200

        # when PostgreSQL ends every session of this database, as a restart does
        with psycopg.connect(libpq(postgres), autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert ended is not None
        assert ended[0] >= 2  # the pool's and the engine's

        # then the next webhook (its connection lookup and its INSERT) finds live connections
        after, _ = receiver.post(http, "evt_after")
        assert after.status_code == 202, after.text
        assert http.get("/readyz").status_code == 200
    assert sorted(receiver.stored()) == ["evt_after", "evt_before"]
    receiver.engine.dispose()


def test_with_the_database_unreachable_webhooks_are_503_and_readyz_says_so_in_time() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    receiver = Receiver(f"postgresql+psycopg://postgres@127.0.0.1:{port}/nothing")
    with TestClient(receiver.app, raise_server_exceptions=False) as http:
        answer, took = receiver.post(http, "evt_1")
        started = time.monotonic()
        ready = http.get("/readyz")
        ready_took = time.monotonic() - started

    assert (answer.status_code, "retry-after" in answer.headers) == (503, True)
    assert took < WAIT + 1.0
    assert (ready.status_code, ready_took < WAIT + 1.0) == (503, True)
    receiver.engine.dispose()


def test_on_sqlite_a_locked_database_is_a_503_in_time_and_the_retry_is_not_stored_twice(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    receiver = Receiver(url)
    with TestClient(receiver.app, raise_server_exceptions=False) as http:
        # given another process holding SQLite's write lock for 3 s
        blocker = make_engine(url)
        with blocker.connect() as connection:  # BEGIN IMMEDIATE: the write lock
            connection.exec_driver_sql("SELECT 1")
            answer, took = receiver.post(http, "evt_1")
            time.sleep(2)
        blocker.dispose()

        # then the webhook was a 503 within the bound; its write may have gone through
        # once the lock was gone, so the sender's retry is a duplicate, or stores it now
        assert (answer.status_code, took < WAIT + 1.0) == (503, True)
        deadline = time.monotonic() + 10
        retry, _ = receiver.post(http, "evt_1")
        while retry.status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
            retry, _ = receiver.post(http, "evt_1")
        assert retry.status_code in (200, 202)
    assert receiver.stored() == ["evt_1"]
    receiver.engine.dispose()


def test_a_write_that_commits_after_its_503_is_handed_on_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    receiver = Receiver(url, slow=True)
    with TestClient(receiver.app, raise_server_exceptions=False) as http:
        answer, _ = receiver.post(http, "evt_late")
        deadline = time.monotonic() + 5
        while not receiver.dispatcher.ingested and time.monotonic() < deadline:
            time.sleep(0.05)

    # then: a 503, yet stored after all, and handed to the workers without the sweeper
    assert answer.status_code == 503
    with session_scope(receiver.engine) as session:
        [inbox_id] = session.exec(select(InboxEvent.id)).all()
    assert receiver.dispatcher.ingested == [inbox_id]
    receiver.engine.dispose()
