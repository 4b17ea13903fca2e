"""Survey NPS wait for what they need; they are never buried for want of patience.

The survey respondent linking is a prepare hook: before an NPS batch is sent it reads
Planhat's directory of endusers, and has Planhat make the missing ones. A 429 to that read
pauses every worker on the token (the shared Redis limiter) and costs no attempt; a
company still on its way is waited for; a company written after the directory was read
takes its respondents (Planhat places them by domain when they are written).
"""

from __future__ import annotations

import time
from pathlib import Path

import redis
from sqlmodel import select

from connectors.change import Change
from state.db import session_scope
from state.tables import OutboxItem
from tests import stand_in_http
from tests.conftest import sandbox_stats
from tests.surveys.harness import Surveys, typeform_event
from worker.pipeline.ingest import offer
from worker.runtime.ratelimit import RedisRateLimiter, budget_key


def test_a_429_to_a_prepare_hooks_read_pauses_every_worker_and_costs_no_attempt(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    surveys = Surveys(tmp_path)
    try:
        # given: this engine and another worker share one limiter in Redis
        surveys.runtime.limiter = RedisRateLimiter(redis_client, rate_per_minute=1e6, burst=1000)
        other_worker = RedisRateLimiter(redis_client, rate_per_minute=1e6, burst=1000)
        surveys.company("Acme", "acme.example")
        storm = stand_in_http.post(
            f"{surveys.planhat.url}/_sandbox/faults", json={"rate_limit_storm_s": 3}
        )
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


def storm(surveys: Surveys, seconds: float) -> None:
    answer = stand_in_http.post(
        f"{surveys.planhat.url}/_sandbox/faults", json={"rate_limit_storm_s": seconds}
    )
    answer.raise_for_status()


def test_a_company_written_after_the_directory_was_read_takes_its_respondents(
    tmp_path: Path,
) -> None:
    surveys = Surveys(tmp_path)
    try:
        # given: the directory was read (for Ada) before Globex was created
        surveys.company("Acme", "acme.example")
        surveys.post_typeform(typeform_event("tok-1", "ada@acme.example", 9))
        surveys.drain()
        globex = surveys.company("Globex", "globex.example")

        # when: a response from Globex's domain comes within the directory's freshness
        surveys.post_typeform(typeform_event("tok-2", "kim@globex.example", 7))
        surveys.drain()

        # then: it is linked to Globex, not set aside
        assert {n["score"]: n["cId"] for n in surveys.nps()}[7] == globex
        assert surveys.letters() == []
    finally:
        surveys.close()


def test_an_nps_waits_while_its_company_is_rate_limited(tmp_path: Path) -> None:
    surveys = Surveys(tmp_path)
    try:
        # given: a directory read earlier, and a company of ours still in the outbox
        surveys.company("Acme", "acme.example")
        surveys.post_typeform(typeform_event("tok-1", "ada@acme.example", 9))
        surveys.drain()
        storm(surveys, 2)
        with session_scope(surveys.runtime.engine) as session:
            company = {"name": "Globex", "domains": ["globex.example"]}
            offer(session, "default", Change(model="companies", key_field="sourceId",
                                             key="globex", fields=company, version=1))  # fmt: skip

        # when: a response for its domain arrives while Planhat answers 429
        surveys.post_typeform(typeform_event("tok-2", "kim@globex.example", 7))
        surveys.drain(timeout=30)

        # then: the NPS waited for its company, and went out linked to it
        [globex] = [c for c in surveys.client.list("companies") if c["name"] == "Globex"]
        assert {n["score"]: n["cId"] for n in surveys.nps()}[7] == globex["_id"]
        assert surveys.letters() == []
        assert sandbox_stats(surveys.planhat)["rate_limited"] > 0
    finally:
        surveys.close()


def test_a_respondent_no_company_takes_waits_its_tries_then_is_a_dead_letter(
    tmp_path: Path,
) -> None:
    surveys = Surveys(tmp_path)
    try:
        surveys.post_typeform(typeform_event("tok-1", "kim@nowhere.example", 6))
        surveys.drain()

        [letter] = surveys.letters()
        assert letter.attempts == surveys.runtime.config.parent_wait_attempts
        assert "no company has the domain nowhere.example" in letter.reason
    finally:
        surveys.close()
