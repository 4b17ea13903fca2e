"""A worker whose key cannot open a connection skips it, logging why once per interval,
instead of failing every task for it (and leaves its work waiting, not lost)."""

from __future__ import annotations

import structlog
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlmodel import select

from state.connections import Connections, add_connection
from state.crypto import SecretBox
from state.db import session_scope
from state.tables import OutboxItem
from tests.engine.conftest import change, queue
from tests.fakes import RecordingDispatcher
from worker.intake.poll import SourceApis
from worker.runtime.jobs import (
    MAX_COUNTDOWN,
    LocalLocks,
    PlanhatClients,
    Runtime,
    run_flush,
    run_poll,
)
from worker.runtime.ratelimit import LocalRateLimiter
from worker.runtime.settings import EngineSettings

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


def runtime(engine: Engine, key: str, dispatcher: RecordingDispatcher) -> Runtime:
    connections = Connections(engine, box=lambda: SecretBox(key), default=lambda: None, ttl=0)
    return Runtime(
        engine=engine,
        limiter=LocalRateLimiter(rate_per_minute=1e6, burst=1000),
        dispatcher=dispatcher,
        locks=LocalLocks(),
        clients=PlanhatClients(connections),
        config=EngineSettings(flush_linger=0.0),
    )


def test_a_worker_skips_a_connection_it_cannot_open_and_says_why_once(engine: Engine) -> None:
    # given a change waiting for acme, and a worker whose key does not open acme
    add_connection(
        engine, SecretBox(KEY_A), name="acme", planhat_base_url="http://127.0.0.1:9",
        planhat_token="acme-token", secrets={"standard": "whsec_acme"},
    )  # fmt: skip
    queue(engine, change(mrr=5), connection="acme")
    dispatcher = RecordingDispatcher()
    rt = runtime(engine, KEY_B, dispatcher)

    # when it flushes and polls again and again
    with structlog.testing.capture_logs() as logged:
        for _ in range(3):
            assert run_flush(rt, "acme") == []
            assert run_poll(rt, SourceApis()) == 0

    # then the change waits, a flush is asked for later, and the reason is logged once
    with session_scope(engine) as session:
        assert len(session.exec(select(OutboxItem)).all()) == 1
    assert dispatcher.flushes == [("acme", MAX_COUNTDOWN)] * 3
    locked = [entry for entry in logged if entry["event"] == "connection.locked"]
    assert len(locked) == 1
    assert locked[0]["connection"] == "acme"
    assert "does not open the stored secrets" in locked[0]["reason"]
    assert "acme-token" not in str(logged)
