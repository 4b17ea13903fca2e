"""Flushes driven by the budget, not by quiet (worker/pipeline/flush.flush_plan,
worker/runtime/jobs.run_flush): a full batch goes at once, a partial one once its oldest
change has lingered; the flush spends at most its share of the token's budget, parents
first; and a flush asked for sooner than the scheduled one is not lost behind it."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import redis
from cryptography.fernet import Fernet
from sqlalchemy import Engine, update

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import session_scope
from state.tables import OutboxItem, utcnow
from tests.conftest import sandbox_stats
from tests.engine.conftest import change, queue
from tests.fakes import RecordingDispatcher
from worker.pipeline.flush import flush_batch, flush_plan
from worker.runtime.jobs import LocalLocks, PlanhatClients, Runtime, run_flush
from worker.runtime.ratelimit import LocalRateLimiter
from worker.runtime.settings import EngineSettings


def age(engine: Engine, seconds: float) -> None:
    """Every waiting change arrived ``seconds`` ago."""
    with session_scope(engine) as session:
        then = utcnow() - timedelta(seconds=seconds)
        session.exec(update(OutboxItem).values(enqueued_at=then, next_attempt_at=then))  # type: ignore[call-overload]


def runtime(engine: Engine, url: str, config: EngineSettings) -> Runtime:
    box = SecretBox(Fernet.generate_key().decode())
    tenant = Tenant(name="default", planhat_base_url=url, planhat_token="t", secrets={})
    return Runtime(
        engine=engine,
        limiter=LocalRateLimiter(rate_per_minute=1e6, burst=1000),
        dispatcher=RecordingDispatcher(),
        locks=LocalLocks(),
        clients=PlanhatClients(Connections(engine, box=lambda: box, default=lambda: tenant)),
        config=config,
    )


def test_a_partial_batch_lingers_and_a_full_one_goes_at_once(engine: Engine) -> None:
    queue(engine, *(change(key=f"sub_{n}", mrr=n) for n in range(3)))
    queue(engine, *(change(model="companies", key=f"co_{n}", name="A") for n in range(5)))

    # just arrived: nothing is ready, and the plan says when the first will be
    plan = flush_plan(engine, "default", batch_size=5, linger=0.25)
    assert plan.ready == {"companies"}  # 5 of 5: a full batch does not wait
    assert plan.next_in is not None
    assert 0.0 < plan.next_in <= 0.25

    # once the oldest has lingered, the partial batch is ready too
    age(engine, 0.3)
    plan = flush_plan(engine, "default", batch_size=5, linger=0.25)
    assert plan.ready == {"companies", "licenses"}
    assert plan.next_in is None


def test_a_change_backing_off_is_planned_for_when_its_wait_ends(engine: Engine) -> None:
    queue(engine, change(mrr=1))
    with session_scope(engine) as session:
        later = utcnow() + timedelta(seconds=30)
        session.exec(update(OutboxItem).values(next_attempt_at=later))  # type: ignore[call-overload]
    plan = flush_plan(engine, "default", batch_size=500, linger=0.25)
    assert plan.ready == frozenset()
    assert plan.next_in is not None
    assert 29.0 < plan.next_in <= 30.0


def test_the_flush_spends_only_its_share_of_the_budget_parents_first(
    engine: Engine, sandbox: BackgroundSandbox
) -> None:
    # given three models ready, and a flush share of 6 calls a minute (one every 10 s)
    config = EngineSettings(rate_per_minute=7.5, flush_budget_share=0.8, flush_linger=0.0)
    rt = runtime(engine, sandbox.url, config)
    queue(engine, change(model="companies", key="co_1", name="Acme"))
    queue(engine, change(key="sub_1", mrr=5, companyId="srcid-co_1"))
    queue(engine, change(model="nps", key="r_1", score=9, cId="srcid-co_1", email="a@b.example"))

    # when it flushes
    started = time.monotonic()
    reports = run_flush(rt, "default")

    # then one call went out (the parent), the round ended instead of waiting 10 s, and
    # the next flush is asked for when the share allows another call
    assert time.monotonic() - started < 5
    assert [report.model for report in reports] == ["companies"]
    assert Counter(sandbox_stats(sandbox)["by_route"]) == {"PUT /companies": 1}
    connection, delay = rt.dispatcher.flushes[-1]  # type: ignore[attr-defined]
    assert connection == "default"
    assert 8.0 < delay <= 10.0


def test_a_steady_stream_is_paced_to_the_share_not_to_the_rate(
    engine: Engine, sandbox: BackgroundSandbox
) -> None:
    # given a flush share of 120 calls a minute (one every 0.5 s) and a change every 50 ms
    config = EngineSettings(rate_per_minute=150, flush_budget_share=0.8, flush_linger=0.05)
    rt = runtime(engine, sandbox.url, config)
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 3.0:
        queue(engine, change(key=f"sub_{n}", mrr=n))
        n += 1
        run_flush(rt, "default")
        time.sleep(0.05)
    elapsed = time.monotonic() - started

    # then the calls stay within the share (plus the first, which needs no wait)
    calls = Counter(sandbox_stats(sandbox)["by_route"])["PUT /licenses"]
    assert 2 <= calls <= 1 + elapsed / 0.5, (calls, elapsed)


def test_a_flush_asked_for_sooner_is_sent_even_when_one_is_scheduled_later(
    redis_client: redis.Redis,
) -> None:
    from worker.runtime.tasks import CeleryDispatcher

    sent: list[float] = []

    class Broker:
        """Celery's send_task, written down (the broker is outside this test)."""

        def send_task(self, name: str, args: tuple[str], countdown: float) -> None:
            sent.append(countdown)

    dispatcher = CeleryDispatcher(Broker(), redis_client, None)  # type: ignore[arg-type]

    dispatcher.flush("acme", 30.0)  # a retry, scheduled far out
    dispatcher.flush("acme", 0.25)  # a new change: sooner, so sent too
    dispatcher.flush("acme", 0.25)  # already due as soon: not sent again
    dispatcher.flush("acme", 5.0)  # later than one scheduled: not sent
    assert sent == [30.0, 0.25]

    dispatcher.flush_started("acme")  # it ran: the next request is sent
    dispatcher.flush("acme", 5.0)
    assert sent == [30.0, 0.25, 5.0]


def test_a_child_does_not_wait_for_a_newer_version_of_a_company_planhat_has(
    engine: Engine, sandbox: BackgroundSandbox
) -> None:
    # given a company already in Planhat, a newer version of it waiting, and a license
    rt = runtime(engine, sandbox.url, EngineSettings(flush_linger=0.0))
    queue(engine, change(model="companies", key="co_1", version=1, name="Acme"))
    run_flush(rt, "default")
    queue(engine, change(model="companies", key="co_1", version=2, name="Acme Inc"))
    license = {"companyId": "srcid-co_1", "_currency": "USD", "fromDate": "2026-01-01",
               "product": "Pro", "mrr": 5}  # fmt: skip
    queue(engine, change(key="sub_1", **license))

    # when the licenses are flushed before the company's new version is
    with PlanhatClient("t", base_url=sandbox.url) as planhat:
        report = flush_batch(engine, planhat, rt.limiter, connection="default",
                             model="licenses", budget="b", policy=rt.config.policy())  # fmt: skip

    # then the license went: its company resolves already, the new name changes nothing
    assert (report.written, report.deferred) == (1, 0)
    assert Counter(sandbox_stats(sandbox)["by_route"])["PUT /licenses"] == 1
