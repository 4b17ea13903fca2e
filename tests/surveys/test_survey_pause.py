"""A 429 answered to a prepare hook's call pauses the shared budget and costs no attempt.

The survey respondent linking is a prepare hook: before an NPS batch is sent it reads
Planhat's directory. Planhat (the sandbox, in a 429 storm) refuses that read; every worker
on the token must then wait, on the shared Redis limiter, and the record must wait with
them without counting a failed try.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlmodel import select

from state.db import session_scope
from state.tables import OutboxItem
from tests.conftest import sandbox_stats
from tests.engine.services import TEST_REDIS_URL, service_missing
from tests.surveys.harness import Surveys, typeform_event
from worker.runtime.ratelimit import RedisRateLimiter, budget_key


@pytest.fixture
def shared_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        service_missing("Redis", error)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_a_429_to_a_prepare_hooks_read_pauses_every_worker_and_costs_no_attempt(
    tmp_path: Path, shared_redis: redis.Redis
) -> None:
    surveys = Surveys(tmp_path)
    try:
        # given: this engine and another worker share one limiter in Redis
        surveys.runtime.limiter = RedisRateLimiter(shared_redis, rate_per_minute=1e6, burst=1000)
        other_worker = RedisRateLimiter(shared_redis, rate_per_minute=1e6, burst=1000)
        surveys.company("Acme", "acme.example")
        storm = httpx.post(f"{surveys.planhat.url}/_sandbox/faults", json={"rate_limit_storm_s": 3})
        storm.raise_for_status()

        # when: a response arrives, and the hook's first read of the directory gets a 429
        assert (
            surveys.post_typeform(typeform_event("tok-1", "ada@acme.example", 9)).status_code == 202
        )
        deadline = time.monotonic() + 10
        while sandbox_stats(surveys.planhat)["rate_limited"] == 0:
            assert time.monotonic() < deadline, "the hook never called Planhat"
            time.sleep(0.02)

        # then: the other worker is told to wait; the record waits without an attempt
        assert other_worker.try_acquire(budget_key("token")) > 0
        with session_scope(surveys.runtime.engine) as session:
            [row] = session.exec(select(OutboxItem)).all()
            assert (row.model, row.attempts, row.last_error) == ("nps", 0, None)
        routes = sandbox_stats(surveys.planhat)["by_route"]
        assert isinstance(routes, dict)
        assert "PUT /nps" not in routes  # nothing was sent unlinked

        # and once the storm is over, it goes out linked
        surveys.drain(timeout=30)
        [nps] = surveys.nps()
        assert nps["score"] == 9
        assert nps.get("cId")
        assert surveys.letters() == []
    finally:
        surveys.close()
