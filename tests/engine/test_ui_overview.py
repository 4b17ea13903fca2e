"""The overview's numbers, the charts' series and the problems, on SQLite and PostgreSQL:
rows placed at known times, so each window's edge is tested; and the 429 counts the rate
limiters keep."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import Engine

from state.db import session_scope
from state.tables import Cursor, DeadLetter, InboxEvent, OutboxItem, RecordState, utcnow
from worker.ops.health import problems
from worker.ops.overview import ConnectionOverview, Counts, TokenState, overview
from worker.ops.series import series
from worker.runtime.ratelimit import LocalRateLimiter, RedisRateLimiter

NOW = utcnow().replace(microsecond=0)
TOKEN = TokenState(budget_key="budget-a")


def event(minutes_ago: float, status: str, *, lag: float | None = 2.0, name: str = "a") -> None:
    received = NOW - timedelta(minutes=minutes_ago)
    processed = received + timedelta(seconds=lag) if lag is not None else None
    rows.append(
        InboxEvent(
            connection=name,
            source="standard",
            event_id=f"e-{len(rows)}",
            body=b"{}",
            received_at=received,
            status=status,
            processed_at=processed,
        )
    )


rows: list[InboxEvent | DeadLetter | OutboxItem | RecordState | Cursor] = []


@pytest.fixture
def placed(engine: Engine) -> Iterator[Engine]:
    """Connection ``a``: events over two days, a dead letter, a waiting change, a flush, a
    cursor; connection ``b``: one event only (nothing of ``a``'s may show there)."""
    rows.clear()
    event(25, "done")
    event(52, "done", lag=8.0)
    event(55, "ignored")
    event(5, "pending", lag=None)
    event(3 * 60, "done")  # in the day, not the hour
    event(23 * 60, "failed")
    event(2 * 24 * 60, "done")  # in neither
    event(1, "done", name="b")
    letter = dict(model="licenses", key_field="sourceId", key_value="x", fields={}, version=1)
    rows.append(DeadLetter(connection="a", key="sourceId=x", reason="refused", **letter))
    old = DeadLetter(connection="a", key="sourceId=y", reason="refused", **letter)
    old.created_at = NOW - timedelta(hours=5)
    rows.append(old)
    rows.append(
        OutboxItem(
            connection="a",
            model="companies",
            key="sourceId=c",
            key_field="sourceId",
            key_value="c",
            version=1,
            enqueued_at=NOW - timedelta(minutes=20),
        )
    )
    flushed = NOW - timedelta(minutes=2)
    rows.append(RecordState(connection="a", model="companies", key="sourceId=d",
                            fields_hash="h", version=1, pushed_at=flushed))  # fmt: skip
    rows.append(Cursor(connection="a", source="stripe", position="evt_9",
                       updated_at=NOW - timedelta(seconds=90)))  # fmt: skip
    with session_scope(engine) as session:
        session.add_all(rows)
    return engine


def only(engine: Engine, name: str, token: TokenState = TOKEN) -> ConnectionOverview:
    [view] = overview(engine, [name], token_of=lambda _: token, budget_of=lambda _: None, now=NOW)
    return view


def test_counts_of_the_last_hour_and_day_are_each_windows_own(placed: Engine) -> None:
    view = only(placed, "a")

    assert view.last_hour == Counts(received=4, applied=2, ignored=1, dead=1)
    assert view.last_day == Counts(received=6, applied=3, ignored=1, dead=2)
    assert only(placed, "b").last_day == Counts(received=1, applied=1, ignored=0, dead=0)


def test_backlog_its_oldest_age_the_last_flush_and_cursors(placed: Engine) -> None:
    view = only(placed, "a")

    assert (view.pending_events, view.pending_changes, view.pending_write_backs) == (1, 1, 0)
    assert view.backlog == 2
    assert view.oldest_pending == 20 * 60  # the change queued 20 minutes ago, not the event
    assert view.last_flush == NOW - timedelta(minutes=2)
    assert view.dead_letters == 2
    [cursor] = view.cursors
    assert (cursor.feed, cursor.position, cursor.age) == ("stripe", "evt_9", 90.0)
    assert only(placed, "b").oldest_pending is None


def test_the_series_puts_each_event_in_its_slice_with_its_lag(placed: Engine) -> None:
    buckets = series(placed, "a", now=NOW, span=timedelta(hours=1), buckets=6)

    assert [b.received for b in buckets] == [2, 0, 0, 1, 0, 1]  # 55 and 52 min ago; 25; 5
    assert [b.processed for b in buckets] == [2, 0, 0, 1, 0, 0]
    assert buckets[0].lag_max == pytest.approx(8.0, abs=0.01)
    assert buckets[0].lag_avg == pytest.approx(5.0, abs=0.01)
    assert buckets[5].lag_max is None  # the pending event has no lag yet
    assert buckets[0].start == NOW - timedelta(hours=1)


def test_problems_say_one_line_each_and_none_when_healthy(placed: Engine) -> None:
    missing = TokenState(budget_key=None, problem="no Planhat token: events wait")

    found = problems([only(placed, "a", missing), only(placed, "b")], max_lag=600)

    assert found == [
        "a: no Planhat token: events wait",
        "a: 2 dead letter(s) (planhat-sync dlq list)",
        "a: the oldest pending change has waited 20 min (more than 600 s; backlog 2)",
    ]
    assert problems([only(placed, "a")], max_lag=3600) == [
        "a: 2 dead letter(s) (planhat-sync dlq list)"
    ]
    assert problems([only(placed, "b")], max_lag=0) == []


def test_the_local_limiter_counts_429s_and_the_burst_in_use() -> None:
    clock = [100.0]
    limiter = LocalRateLimiter(rate_per_minute=60, burst=5, clock=lambda: clock[0])
    for _ in range(3):
        assert limiter.try_acquire("k") == 0.0
    limiter.pause("k", 4.0)
    limiter.back_off("k", first=1.0, cap=10.0)  # a 429 while paused: counted, pause kept

    use = limiter.use("k")

    assert (use.in_use, use.burst, use.rate_limited_hour, use.rate_limited_day) == (3, 5, 2, 2)
    assert use.paused_for == pytest.approx(4.0)
    clock[0] += 10
    assert (limiter.use("k").in_use, limiter.use("k").paused_for) == (0, 0.0)
    assert limiter.use("other").rate_limited_day == 0


def test_the_redis_limiter_counts_429s_for_every_worker(redis_client: redis.Redis) -> None:
    one = RedisRateLimiter(redis_client, rate_per_minute=60, burst=5, prefix="t:rl")
    other = RedisRateLimiter(redis_client, rate_per_minute=60, burst=5, prefix="t:rl")
    assert one.try_acquire("k") == 0.0
    assert other.try_acquire("k") == 0.0
    one.pause("k", 30.0)
    other.back_off("k", first=1.0, cap=10.0)

    use = other.use("k")

    assert (use.in_use, use.rate_limited_hour, use.rate_limited_day) == (2, 2, 2)
    assert 29.0 < use.paused_for <= 30.0
