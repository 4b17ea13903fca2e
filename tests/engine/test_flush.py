"""Flush against the sandbox: batching, results, dead letters, parents, budget, leases."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from connectors.change import Change
from connectors.planhat.client import PlanhatClient
from connectors.planhat.retry import RetryPolicy
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.db import session_scope
from state.tables import DeadLetter, OutboxItem, RecordState, utcnow
from tests import stand_in_http
from tests.conftest import sandbox_stats
from tests.engine.conftest import change, queue
from worker.pipeline import dlq
from worker.pipeline.flush import FlushPolicy, FlushReport, _claim, flush_batch
from worker.pipeline.ingest import offer
from worker.runtime.ratelimit import LocalRateLimiter

NO_WAIT = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, max_rate_limit_wait=0)
POLICY = FlushPolicy(batch_size=500, backoff_base=0.01, backoff_cap=0.02, parent_wait_attempts=1)


def company(key: str, version: int = 1, **fields: Any) -> Change:
    return change("companies", key, version, name=f"Company {key}", **fields)


def license_(key: str, company_key: str, version: int = 1, **fields: Any) -> Change:
    fields = {
        "companyId": f"srcid-{company_key}",
        "_currency": "USD",
        "fromDate": "2026-01-01",
        "mrr": 10,
        **fields,
    }
    return change("licenses", key, version, **fields)


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("t", base_url=sandbox.url, retry=NO_WAIT) as client:
        yield client


@pytest.fixture
def limiter() -> LocalRateLimiter:
    return LocalRateLimiter(rate_per_minute=1e6, burst=1000)


def flush(
    engine: Engine,
    planhat: PlanhatClient,
    limiter: LocalRateLimiter,
    model: str,
    policy: FlushPolicy = POLICY,
) -> FlushReport:
    return flush_batch(
        engine, planhat, limiter, connection="default", model=model, budget="b", policy=policy
    )


def rows(engine: Engine) -> list[OutboxItem]:
    with session_scope(engine) as session:
        return list(session.exec(select(OutboxItem)))


def letters(engine: Engine) -> list[DeadLetter]:
    with session_scope(engine) as session:
        return list(session.exec(select(DeadLetter)))


def puts(sandbox: BackgroundSandbox, model: str) -> int:
    by_route = sandbox_stats(sandbox)["by_route"]
    assert isinstance(by_route, dict)
    return int(by_route.get(f"PUT /{model}", 0))


def test_a_batch_lands_in_one_call_and_is_remembered(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    queue(engine, company("c1"), *(license_(f"l{i}", "c1") for i in range(3)))

    reports = [flush(engine, planhat, limiter, model) for model in ("companies", "licenses")]

    assert [(r.sent, r.written, r.calls) for r in reports] == [(1, 1, 1), (3, 3, 1)]
    assert (puts(sandbox, "companies"), puts(sandbox, "licenses")) == (1, 1)
    assert rows(engine) == []
    with session_scope(engine) as session:
        states = {s.key: s for s in session.exec(select(RecordState))}
    assert states["sourceId=l0"].planhat_id == planhat.get("licenses", "srcid-l0")["_id"]
    # the same changes again cost nothing at all
    queue(engine, company("c1"), *(license_(f"l{i}", "c1") for i in range(3)))
    assert rows(engine) == []


def test_a_rejected_record_is_one_dead_letter_and_the_rest_of_its_batch_lands(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    queue(engine, company("c1"))
    flush(engine, planhat, limiter, "companies")
    bad = change("licenses", "l-bad", 1, _currency="USD", fromDate="2026-01-01", mrr=5)
    queue(engine, license_("l1", "c1"), bad, license_("l2", "c1"))

    report = flush(engine, planhat, limiter, "licenses")

    assert (report.written, report.dead, report.calls) == (2, 1, 1)
    [letter] = letters(engine)
    assert (letter.model, letter.key) == ("licenses", "sourceId=l-bad")
    assert "missing required field companyId" in letter.reason
    assert {r["sourceId"] for r in planhat.list("licenses")} == {"l1", "l2"}
    assert rows(engine) == []


def test_dlq_retry_after_a_fix_lands_the_record(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    # given a license whose company is in nobody's hands yet: rejected, then buried
    queue(engine, license_("l1", "late"))
    report = flush(engine, planhat, limiter, "licenses")
    [letter] = letters(engine)
    assert report.dead == 1
    assert "no company matches 'srcid-late'" in letter.reason
    # when the company is fixed in Planhat and the dead letter retried
    planhat.create("companies", {"name": "Late Inc", "sourceId": "late"})
    [outcome] = dlq.retry(engine, [letter.id or 0])
    report = flush(engine, planhat, limiter, "licenses")
    # then it lands
    assert (outcome.result, report.written) == ("queued", 1)
    assert letters(engine) == []
    assert planhat.get("licenses", "srcid-l1")["mrr"] == 10


def test_a_child_waits_for_its_pending_parent(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    queue(engine, license_("l1", "c1"), company("c1"))

    early = flush(engine, planhat, limiter, "licenses")
    flush(engine, planhat, limiter, "companies")
    with session_scope(engine) as session:
        row = session.get(OutboxItem, ("default", "licenses", "sourceId=l1"))
        assert row is not None
        row.next_attempt_at = utcnow()  # skip the one-second wait
        session.add(row)
    late = flush(engine, planhat, limiter, "licenses")

    assert (early.deferred, early.calls, early.dead) == (1, 0, 0)
    assert (late.written, late.dead) == (1, 0)


def test_an_unknown_parent_is_retried_before_the_record_is_buried(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    patient = FlushPolicy(backoff_base=0.01, backoff_cap=0.01, parent_wait_attempts=3)
    queue(engine, license_("l1", "c-later"))

    first = flush(engine, planhat, limiter, "licenses", patient)
    planhat.create("companies", {"name": "Later", "sourceId": "c-later"})
    time.sleep(0.02)
    second = flush(engine, planhat, limiter, "licenses", patient)

    assert (first.deferred, first.dead) == (1, 0)
    assert (second.written, second.dead) == (1, 0)


def test_children_buried_for_want_of_their_company_come_back_when_it_arrives(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    # given one license buried and one backing off, both for a company not yet sent
    patient = FlushPolicy(backoff_base=60, backoff_cap=60, parent_wait_attempts=2)
    queue(engine, license_("l1", "c-late"))
    flush(engine, planhat, limiter, "licenses", POLICY)  # parent_wait_attempts=1: buried
    queue(engine, license_("l2", "c-late"))
    waiting = flush(engine, planhat, limiter, "licenses", patient)  # backs off for 60 s
    [letter] = letters(engine)
    assert letter.reason.startswith("its company is not in Planhat (yet)")
    assert waiting.deferred == 1
    # when the company arrives and is written
    queue(engine, company("c-late"))
    flush(engine, planhat, limiter, "companies")
    # then both go out on the next flush, with no dlq retry and no 60 s wait
    report = flush(engine, planhat, limiter, "licenses", patient)
    assert (report.written, report.dead) == (2, 0)
    assert letters(engine) == []
    assert {r["sourceId"] for r in planhat.list("licenses")} == {"l1", "l2"}


def test_a_429_pauses_the_shared_budget_and_costs_no_attempt(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    queue(engine, company("c1"))
    stand_in_http.post(f"{sandbox.url}/_sandbox/faults", json={"rate_limit_storm_s": 5})

    report = flush(engine, planhat, limiter, "companies")

    assert report.retry_in == 1.0
    assert limiter.try_acquire("b") > 0  # every caller of this token now waits
    [row] = rows(engine)
    assert (row.attempts, row.claimed_until) == (0, None)
    assert row.next_attempt_at > utcnow()
    assert letters(engine) == []


def test_server_errors_back_off_then_become_a_dead_letter(
    engine: Engine, start_sandbox: Any, limiter: LocalRateLimiter
) -> None:
    failing = start_sandbox(SandboxConfig(fail_rate=1.0, rate_per_minute=1e9, burst=10**6))
    policy = FlushPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.01)
    queue(engine, company("c1"))
    with PlanhatClient("t", base_url=failing.url, retry=NO_WAIT) as client:
        first = flush(engine, client, limiter, "companies", policy)
        time.sleep(0.03)
        second = flush(engine, client, limiter, "companies", policy)

    assert (first.deferred, first.dead) == (1, 0)
    assert second.dead == 1
    [letter] = letters(engine)
    assert letter.reason.startswith("gave up after 2 attempts")
    assert rows(engine) == []


def test_rows_of_a_flush_that_died_come_back_after_the_lease(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    short = FlushPolicy(lease=0.3)
    queue(engine, company("c1"))
    with session_scope(engine) as session:  # a flush claims the row, then its worker dies
        claimed, _ = _claim(session, "default", "companies", short, utcnow())
    assert len(claimed) == 1

    during = flush(engine, planhat, limiter, "companies", short)
    time.sleep(0.4)
    after = flush(engine, planhat, limiter, "companies", short)

    assert during.sent == 0
    assert (after.sent, after.written) == (1, 1)


def test_a_change_arriving_during_a_flush_is_written_next_time(
    engine: Engine, sandbox: BackgroundSandbox, limiter: LocalRateLimiter
) -> None:
    # given a Planhat call during which a newer change for the same record arrives
    def during_the_call(request: httpx.Request) -> None:
        with session_scope(engine) as session:
            offer(session, "default", company("c1", version=2, phone="555"))

    transport = _Hooked(httpx.HTTPTransport(), during_the_call)
    queue(engine, company("c1", version=1))
    with PlanhatClient("t", base_url=sandbox.url, transport=transport, retry=NO_WAIT) as client:
        first = flush(engine, client, limiter, "companies")
        transport.hook = None
        second = flush(engine, client, limiter, "companies")
        stored = client.get("companies", "srcid-c1")

    # then the first write is remembered, the newer one is sent next, and nothing is lost
    assert (first.written, second.written) == (1, 1)
    assert stored["phone"] == "555"
    assert rows(engine) == []


class _Hooked(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, hook: Any) -> None:
        self.inner, self.hook = inner, hook

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.hook is not None:
            self.hook(request)
        return self.inner.handle_request(request)


def test_a_record_that_cannot_be_sent_is_buried_alone_and_its_batch_goes_out(
    engine: Engine, planhat: PlanhatClient, limiter: LocalRateLimiter, sandbox: BackgroundSandbox
) -> None:
    # given: 60 companies and one whose name is a lone surrogate (JSON "\ud800"), queued
    # before mappings refused such text: it is stored, but can never be encoded
    queue(engine, *(company(f"c{n}") for n in range(60)))
    with session_scope(engine) as session:
        session.add(OutboxItem(connection="default", model="companies", key="sourceId=bad",
                               key_field="sourceId", key_value="bad", fields={"name": "\ud800"},
                               field_versions={"name": 1}, version=1))  # fmt: skip

    # when
    report = flush(engine, planhat, limiter, "companies")

    # then: the batch was halved until the bad record stood alone
    assert (report.written, report.dead) == (60, 1)
    [letter] = letters(engine)
    assert letter.key == "sourceId=bad"
    assert letter.reason.startswith("could not be sent: UnicodeEncodeError")
    assert len(list(planhat.list("companies"))) == 60
    assert rows(engine) == []
