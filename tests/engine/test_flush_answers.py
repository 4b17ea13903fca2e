"""The flush against Planhat's other bulk answers (planhat.com/developers/api/http-response-
codes): a 400 with per-record errors, a partial 403, insertsKeys naming only ``_id``. Writes
Planhat applied are recorded as written, never as failed or unconfirmed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from connectors.planhat.client import PlanhatClient
from connectors.planhat.retry import RetryPolicy
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.db import session_scope
from state.tables import DeadLetter, OutboxItem, RecordState
from tests import stand_in_http
from tests.engine.conftest import change, queue
from worker.pipeline.flush import FlushPolicy, FlushReport, flush_batch
from worker.runtime.ratelimit import LocalRateLimiter

NO_WAIT = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, max_rate_limit_wait=0)
POLICY = FlushPolicy(backoff_base=0.01, backoff_cap=0.02, parent_wait_attempts=1)


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("t", base_url=sandbox.url, retry=NO_WAIT) as client:
        yield client


def flush(engine: Engine, planhat: PlanhatClient, model: str) -> FlushReport:
    return flush_batch(
        engine,
        planhat,
        LocalRateLimiter(rate_per_minute=1e6, burst=1000),
        connection="default",
        model=model,
        budget="b",
        policy=POLICY,
    )


def state(engine: Engine) -> tuple[dict[str, str | None], dict[str, str], list[Any]]:
    with session_scope(engine) as session:
        written = {s.key: s.planhat_id for s in session.exec(select(RecordState))}
        dead = {d.key: d.reason for d in session.exec(select(DeadLetter))}
        waiting = list(session.exec(select(OutboxItem)))
    return written, dead, waiting


def test_a_partial_403_records_the_applied_writes_and_buries_the_denied(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    queue(engine, change("companies", "old", 1, name="Old"))
    flush(engine, planhat, "companies")
    stand_in_http.post(f"{sandbox.url}/_sandbox/faults", json={"deny": {"companies": ["create"]}})
    queue(
        engine,
        change("companies", "old", 2, name="Renamed"),
        change("companies", "new", 1, name="New"),
    )

    report = flush(engine, planhat, "companies")

    written, dead, waiting = state(engine)
    assert (report.written, report.dead, report.stopped) == (1, 1, False)
    assert written == {"sourceId=old": planhat.get("companies", "srcid-old")["_id"]}
    assert "permission denied" in dead["sourceId=new"]
    assert waiting == []


def test_a_400_buries_each_record_with_its_reason_in_one_call(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    queue(engine, change("companies", "a", 1, phone="1"), change("companies", "b", 1, phone="2"))

    report = flush(engine, planhat, "companies")

    written, dead, _ = state(engine)
    assert (report.calls, report.written, report.dead) == (1, 0, 2)  # no split: per record
    assert written == {}
    assert all("missing required field name" in reason for reason in dead.values())


def test_inserts_keys_naming_only_the_id_are_written_with_their_ids(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    stand_in_http.post(f"{sandbox.url}/_sandbox/faults", json={"inserts_keys": "id"})
    queue(engine, *(change("companies", f"c{i}", 1, name=f"C{i}") for i in range(3)))

    report = flush(engine, planhat, "companies")

    written, dead, _ = state(engine)
    assert (report.written, dead) == (3, {})
    assert written == {
        f"sourceId=c{i}": planhat.get("companies", f"srcid-c{i}")["_id"] for i in range(3)
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_429s_that_give_no_time_pause_every_worker_for_a_growing_guess(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    # given a Planhat answering 429 without Retry-After for a long while (a 60-120 s window)
    stand_in_http.post(
        f"{sandbox.url}/_sandbox/faults", json={"rate_limit_storm_s": 60, "retry_after": False}
    ).raise_for_status()
    clock = FakeClock()
    limiter = LocalRateLimiter(rate_per_minute=1e6, burst=1000, clock=clock)
    queue(engine, change("companies", "c1", 1, name="C1"))

    def attempt() -> FlushReport:
        with session_scope(engine) as session:  # the row is due again (its delay elapsed)
            for row in session.exec(select(OutboxItem)):
                row.next_attempt_at = row.enqueued_at
                session.add(row)
        return flush_batch(engine, planhat, limiter, connection="default", model="companies",
                           budget="b", policy=POLICY)  # fmt: skip

    # when each pause ends and the next try meets the same 429
    pauses = []
    for _ in range(5):
        report = attempt()
        assert report.stopped
        assert report.retry_in is not None
        pauses.append(report.retry_in)
        assert limiter.try_acquire("b") == pytest.approx(report.retry_in)  # shared
        clock.now += report.retry_in

    # then the pause doubles from 15 s up to Planhat's longest window, and costs no attempt
    assert pauses == [15.0, 30.0, 60.0, 120.0, 120.0]
    [row] = state(engine)[2]
    assert row.attempts == 0
