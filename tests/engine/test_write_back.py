"""The write-back job on both databases, its budget in Redis (as every Celery worker shares
it), a 429 that pauses it, and its scheduling through the broker. The target is a local
fake receiver over a real socket."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
import redis
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlmodel import select

from connectors.change import fields_hash
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import session_scope
from state.tables import Link, WriteBackItem
from tests.fakes import RecordingDispatcher
from tests.outbound import OutboundReceiver
from worker.runtime.jobs import LocalLocks, PlanhatClients, Runtime, run_sweep
from worker.runtime.ratelimit import LocalRateLimiter, RedisRateLimiter, WriteLimiters
from worker.runtime.settings import EngineSettings
from worker.runtime.write_back_jobs import run_write_back

SECRET = "whsec_" + base64.b64encode(b"write-back-test-secret!!").decode()


@pytest.fixture
def receiver() -> Iterator[OutboundReceiver]:
    with OutboundReceiver() as server:
        yield server


def runtime(engine: Engine, receiver: OutboundReceiver, client: redis.Redis) -> Runtime:
    box = SecretBox(Fernet.generate_key().decode())
    tenant = Tenant(
        name="default",
        planhat_base_url="http://127.0.0.1:9",
        planhat_token="t",
        secrets={"standard": SECRET},
        options={"standard.outbound_url": receiver.url, "standard.outbound_models": "tickets"},
    )
    return Runtime(
        engine=engine,
        limiter=LocalRateLimiter(rate_per_minute=1e6, burst=1000),
        dispatcher=RecordingDispatcher(),
        locks=LocalLocks(),
        clients=PlanhatClients(Connections(engine, box=lambda: box, default=lambda: tenant)),
        config=EngineSettings(backoff_base=0.01, backoff_cap=0.05),
        write_limiters=WriteLimiters(
            lambda rate, burst: RedisRateLimiter(
                client, rate_per_minute=rate, burst=burst, prefix="phs:wb"
            )
        ),
    )


def queue_back(engine: Engine, count: int) -> None:
    """``count`` tickets linked to their standard records, each with a change to send."""
    with session_scope(engine) as session:
        for n in range(count):
            record = {
                "connection": "default",
                "model": "tickets",
                "key": f"sourceId=tk-{n}",
                "key_field": "sourceId",
                "key_value": f"tk-{n}",
                "planhat_id": f"{n:024x}",
            }
            session.add(Link(**record, source="standard", planhat_fields={"status": "closed"}))
            session.add(
                WriteBackItem(
                    **record,
                    source="standard",
                    fields={"status": "closed"},
                    version=1_767_225_600_000_000 + n,
                )
            )


def test_write_backs_go_out_within_a_budget_kept_in_redis(
    engine: Engine, redis_client: redis.Redis, receiver: OutboundReceiver
) -> None:
    queue_back(engine, 25)  # more than a burst of the source's 600 a minute (10)
    rt = runtime(engine, receiver, redis_client)

    started = time.monotonic()
    reports = run_write_back(rt, "default")
    elapsed = time.monotonic() - started

    assert sum(report.written for report in reports) == 25
    assert elapsed >= 1.2  # 10 at once, then one each 0.1 s
    assert sorted(d.json()["key"]["sourceId"] for d in receiver.all()) == sorted(
        f"tk-{n}" for n in range(25)
    )
    assert redis_client.keys("phs:wb:*")  # the budget is shared through Redis
    with session_scope(engine) as session:
        assert list(session.exec(select(WriteBackItem))) == []
        links = list(session.exec(select(Link)))
    assert {link.source_written_hash for link in links} == {fields_hash({"status": "closed"})}


def test_a_429_pauses_the_sources_budget_without_an_attempt(
    engine: Engine, redis_client: redis.Redis, receiver: OutboundReceiver
) -> None:
    queue_back(engine, 3)
    rt = runtime(engine, receiver, redis_client)
    receiver.answer(429)

    [report] = run_write_back(rt, "default")

    assert (report.written, report.dead, report.stopped) == (0, 0, True)
    assert len(receiver.all()) == 1  # the first was answered 429: the rest waited
    assert redis_client.keys("phs:wb:*:pause")
    with session_scope(engine) as session:
        rows = list(session.exec(select(WriteBackItem)))
    assert [row.attempts for row in rows] == [0, 0, 0]
    assert all(row.claimed_until is None for row in rows)
    # and it asked to run again once the pause is over
    assert rt.dispatcher.write_backs[-1][0] == "default"  # type: ignore[attr-defined]


def test_the_sweeper_asks_for_due_write_backs(
    engine: Engine, redis_client: redis.Redis, receiver: OutboundReceiver
) -> None:
    queue_back(engine, 1)
    rt = runtime(engine, receiver, redis_client)

    run_sweep(rt)

    assert rt.dispatcher.write_backs == [("default", 0.0)]  # type: ignore[attr-defined]


def test_a_write_back_asked_for_sooner_is_sent_even_when_one_is_scheduled_later(
    redis_client: redis.Redis,
) -> None:
    from worker.runtime.tasks import CeleryDispatcher

    sent: list[tuple[str, float]] = []

    class Broker:
        """Celery's send_task, written down (the broker is outside this test)."""

        def send_task(self, name: str, args: tuple[str], countdown: float) -> None:
            sent.append((name, countdown))

    dispatcher = CeleryDispatcher(Broker(), redis_client, None)  # type: ignore[arg-type]

    dispatcher.write_back("acme", 30.0)
    dispatcher.write_back("acme", 0.25)
    dispatcher.write_back("acme", 5.0)  # one is due sooner: not sent
    dispatcher.flush("acme", 5.0)  # flushes are scheduled apart
    dispatcher.write_back_started("acme")
    dispatcher.write_back("acme", 5.0)

    assert sent == [
        ("planhat_sync.write_back", 30.0),
        ("planhat_sync.write_back", 0.25),
        ("planhat_sync.flush", 5.0),
        ("planhat_sync.write_back", 5.0),
    ]
