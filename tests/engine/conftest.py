"""Engine fixtures: the state store on SQLite and on the real PostgreSQL, the real Redis.

Services that are down skip these tests on a developer's machine and fail them in CI
(CI=true), where .ci/run starts them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from connectors.change import Change, fields_hash
from state.db import make_engine, migrate, session_scope
from state.inbox import store_event
from tests.engine.harness import RedisServer, require_services
from tests.engine.services import fresh_postgres_database
from worker.pipeline.ingest import offer

TABLES = (
    "inbox_event",
    "record_state",
    "outbox",
    "dead_letter",
    "cursor",
    "connection",
    "link",
    "write_back",
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    with fresh_postgres_database("phs_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    """The state store, empty, on each database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
        migrate(url)
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    if request.param == "postgresql":
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))
    yield engine
    engine.dispose()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own (for the end-to-end tests), stopped afterwards."""
    require_services()
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def change(model: str = "licenses", key: str = "sub_1", version: int = 1, **fields: Any) -> Change:
    return Change(model=model, key_field="sourceId", key=key, fields=fields, version=version)


def standard_body(model: str, key: str, version: int | str, **fields: Any) -> bytes:
    import json

    return json.dumps(
        {"model": model, "key": {"sourceId": key}, "fields": fields, "version": version}
    ).encode()


def store(
    engine: Engine, body: bytes, event_id: str | None = None, connection: str = "default"
) -> int:
    with session_scope(engine) as session:
        inbox_id = store_event(
            session,
            connection=connection,
            source="standard",
            event_id=event_id or uuid.uuid4().hex,
            body=body,
        )
    assert inbox_id is not None
    return inbox_id


def queue(engine: Engine, *changes: Change, connection: str = "default") -> None:
    with session_scope(engine) as session:
        for item in changes:
            offer(session, connection, item)


__all__ = ["fields_hash"]
