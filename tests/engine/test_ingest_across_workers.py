"""Ingest across workers: several ingest jobs take from the one Redis queue at once.

On the real PostgreSQL and Redis: two jobs over overlapping records ingest every event
exactly once and leave the outbox the pure merge gives; a long queue starts more tasks, up
to the limit; and no interleaving of a push with a task's last take strands an id.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import redis
from cryptography.fernet import Fernet
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import Engine, text
from sqlmodel import select

from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import make_engine, session_scope
from state.tables import DeadLetter, InboxEvent, OutboxItem
from tests.engine.conftest import TABLES, change, standard_body, store
from tests.engine.services import TEST_REDIS_URL
from worker.pipeline.merge import Pending, merge
from worker.runtime.caches import PlanhatClients
from worker.runtime.jobs import LocalLocks, Runtime, run_ingest_queue
from worker.runtime.ratelimit import LocalRateLimiter
from worker.runtime.settings import EngineSettings, Settings

if TYPE_CHECKING:
    from worker.runtime.tasks import CeleryDispatcher

Dispatchers = Callable[[int], "CeleryDispatcher"]  # slots -> a dispatcher on the test Redis


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))
    yield engine
    engine.dispose()


def scheduled_tasks(client: redis.Redis) -> list[tuple[str, str]]:
    """The tasks waiting in Celery's ``ingest`` queue: (name, arguments as sent), sorted."""
    messages = [json.loads(message) for message in client.lrange("ingest", 0, -1)]
    return sorted((m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages)


@pytest.fixture
def dispatchers(redis_client: redis.Redis) -> Iterator[Dispatchers]:
    # Imported here: worker.runtime.tasks reads REDIS_URL once, when first imported.
    from worker.runtime.tasks import CeleryDispatcher, make_celery

    celery = make_celery(Settings(redis_url=TEST_REDIS_URL), EngineSettings())

    def make(slots: int) -> CeleryDispatcher:
        aclient = AsyncRedis.from_url(TEST_REDIS_URL)  # never used: never connects
        return CeleryDispatcher(celery, redis_client, aclient, slots)

    yield make
    celery.close()


def runtime(engine: Engine, dispatcher: CeleryDispatcher) -> Runtime:
    box = SecretBox(Fernet.generate_key().decode())
    tenant = Tenant(name="default", planhat_base_url="http://127.0.0.1:9", planhat_token="t",
                    secrets={})  # fmt: skip
    return Runtime(
        engine=engine,
        limiter=LocalRateLimiter(rate_per_minute=1e6, burst=1000),
        dispatcher=dispatcher,
        locks=LocalLocks(),
        clients=PlanhatClients(Connections(engine, box=lambda: box, default=lambda: tenant)),
        config=EngineSettings(),
    )


def test_two_ingest_jobs_at_once_ingest_every_event_once_into_the_merged_outbox(
    postgres: Engine, dispatchers: Dispatchers
) -> None:
    # given: 600 events over 12 records (each chunk of 50 touches every record), versions
    # shuffled, all queued for ingest
    rng = random.Random(12)
    versions = list(range(1, 601))
    rng.shuffle(versions)
    changes = []
    for n, version in enumerate(versions):
        key, field = f"r{n % 12}", rng.choice(["mrr", "seats", "plan"])
        changes.append(change("licenses", key, version, **{field: version}))
    ids = [store(postgres, standard_body(c.model, c.key, c.version, **c.fields)) for c in changes]
    dispatchers(2).ingest(ids)

    # when: two jobs (as on two workers) take from the queue at once
    taken: dict[int, int] = {}
    start = threading.Barrier(2)

    def job(slot: int) -> None:
        start.wait()
        taken[slot] = run_ingest_queue(runtime(postgres, dispatchers(2)), 60, slot)

    threads = [threading.Thread(target=job, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # then: both took a share, together every event once, each ingested in one try
    assert min(taken.values()) > 0
    assert sum(taken.values()) == len(ids)
    with session_scope(postgres) as session:
        events = session.exec(select(InboxEvent)).all()
        rows = {row.key_value: row for row in session.exec(select(OutboxItem))}
        assert session.exec(select(DeadLetter)).all() == []
    assert {(e.status, e.attempts) for e in events} == {("done", 1)}
    # and the outbox is what the pure merge makes of the same changes
    expected: dict[str, Pending | None] = {}
    for item in changes:
        expected[item.key] = merge(expected.get(item.key), None, item).pending
    assert {key: (row.fields, row.field_versions, row.version) for key, row in rows.items()} == {
        key: (dict(p.fields), dict(p.field_versions), p.version)
        for key, p in expected.items()
        if p is not None
    }


def test_a_long_queue_starts_more_ingest_tasks_up_to_the_limit(
    redis_client: redis.Redis, dispatchers: Dispatchers
) -> None:
    dispatcher = dispatchers(3)
    # given: a burst of 3,000 ids: the receiver's push starts slot 0's task
    dispatcher.ingest(list(range(1, 3001)))
    assert scheduled_tasks(redis_client) == [("planhat_sync.ingest_batch", "(0,)")]

    # when the tasks take batches, each leaving a full batch waiting, each starts the next
    assert len(dispatcher.take_ingest_batch(500, 0)) == 500
    assert len(dispatcher.take_ingest_batch(500, 1)) == 500
    assert len(dispatcher.take_ingest_batch(500, 2)) == 500

    # then: three tasks in all, never more than the three slots
    assert scheduled_tasks(redis_client) == [
        ("planhat_sync.ingest_batch", "(0,)"),
        ("planhat_sync.ingest_batch", "(1,)"),
        ("planhat_sync.ingest_batch", "(2,)"),
    ]
    # and a shorter queue is shared between them: a third each, not one taking it all
    assert len(dispatcher.take_ingest_batch(500, 0)) == 500
    assert len(dispatcher.take_ingest_batch(500, 1)) == 334
    assert len(scheduled_tasks(redis_client)) == 3


# The receiver's two steps (``_queue``: RPUSH, then SET NX on slot 0's flag; other clients
# may run between them) against the running task's last take, in every order.
ORDERS = [
    ("push", "raise", "take"),
    ("push", "take", "raise"),
    ("take", "push", "raise"),
]


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
@pytest.mark.parametrize("slots", [1, 3])
def test_an_id_pushed_while_the_last_take_runs_is_taken_or_starts_a_task(
    redis_client: redis.Redis, dispatchers: Dispatchers, order: tuple[str, ...], slots: int
) -> None:
    from worker.runtime.tasks import INGEST_FLAG_MS, INGEST_QUEUE, INGEST_SCHEDULED

    dispatcher = dispatchers(slots)
    # given: slot 0's task is running (its flag up) and has taken all but nothing
    redis_client.set(INGEST_SCHEDULED, 1, px=INGEST_FLAG_MS)
    taken: list[int] = []
    raised = False
    for step in order:
        if step == "push":
            redis_client.rpush(INGEST_QUEUE, 7)
        elif step == "raise":
            raised = bool(redis_client.set(INGEST_SCHEDULED, 1, nx=True, px=INGEST_FLAG_MS))
        else:
            taken = dispatcher.take_ingest_batch(500, 0)

    # then: the task took the id, or the receiver raised the flag and starts a new task
    # that will (so the running task gave the flag up only with the queue empty)
    assert taken == [7] or (raised and redis_client.lrange(INGEST_QUEUE, 0, -1) == [b"7"])
    assert not (taken and raised)  # and never both: no task started for nothing


def test_a_lingering_task_keeps_its_flag_and_takes_what_comes_meanwhile(
    redis_client: redis.Redis, dispatchers: Dispatchers
) -> None:
    from worker.runtime.tasks import INGEST_FLAG_MS, INGEST_QUEUE, INGEST_SCHEDULED

    dispatcher = dispatchers(2)
    redis_client.set(INGEST_SCHEDULED, 1, px=INGEST_FLAG_MS)
    # given: the queue is empty, and the task looks again later instead of stopping
    assert dispatcher.take_ingest_batch(500, 0, release=False) == []
    # when: an id is pushed meanwhile, it finds the flag up and starts no task
    redis_client.rpush(INGEST_QUEUE, 8)
    assert not redis_client.set(INGEST_SCHEDULED, 1, nx=True, px=INGEST_FLAG_MS)
    # then: the lingering task's next look takes it, and its last one gives the flag up
    assert dispatcher.take_ingest_batch(500, 0, release=False) == [8]
    assert dispatcher.take_ingest_batch(500, 0) == []
    assert not redis_client.exists(INGEST_SCHEDULED)
    assert scheduled_tasks(redis_client) == []
