"""Records a source deletes: tombstoned at once, deleted in Planhat with one single delete,
never created again (worker/pipeline/deletions.py). Any source: the changes are made
here as a mapping would make them; Planhat is the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from connectors.change import Change
from connectors.planhat.client import PlanhatClient
from connectors.planhat.errors import NotFoundError
from connectors.planhat.retry import RetryPolicy
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.db import session_scope
from state.tables import DeadLetter, Link, OutboxItem, RecordState
from tests.conftest import sandbox_stats
from tests.engine.conftest import change
from worker.pipeline import dlq
from worker.pipeline.flush import FlushPolicy, FlushReport, flush_batch
from worker.pipeline.ingest import offer
from worker.runtime.ratelimit import LocalRateLimiter

NO_WAIT = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, max_rate_limit_wait=0)
POLICY = FlushPolicy(backoff_base=0.01, backoff_cap=0.02)


def company(key: str, version: int = 1) -> Change:
    return change("companies", key, version, name=f"Company {key}")


def deleted(key: str, version: int) -> Change:
    return Change(model="companies", key_field="sourceId", key=key, version=version,
                  action="deleted")  # fmt: skip


def offered(engine: Engine, item: Change) -> str:
    with session_scope(engine) as session:
        return str(offer(session, "default", item))


def flush(engine: Engine, planhat: PlanhatClient, limiter: LocalRateLimiter) -> FlushReport:
    return flush_batch(engine, planhat, limiter, connection="default", model="companies",
                       budget="b", policy=POLICY)  # fmt: skip


def calls(sandbox: BackgroundSandbox, route: str) -> int:
    by_route: Any = sandbox_stats(sandbox)["by_route"]
    return sum(n for name, n in by_route.items() if name.startswith(route))


def rows(engine: Engine, table: Any) -> list[Any]:
    with session_scope(engine) as session:
        return list(session.exec(select(table)))


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("t", base_url=sandbox.url, retry=NO_WAIT) as client:
        yield client


@pytest.fixture
def limiter() -> LocalRateLimiter:
    return LocalRateLimiter(rate_per_minute=1e6, burst=1000)


def test_a_deleted_record_is_deleted_in_planhat_once_and_never_created_again(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    # given a company written to Planhat
    offered(engine, company("c1", 1))
    assert flush(engine, planhat, limiter).written == 1
    # when its source deletes it
    assert offered(engine, deleted("c1", 2)) == "queued"
    report = flush(engine, planhat, limiter)
    # then one single delete, and nothing of it is left but the tombstone
    assert (report.deleted, report.calls, report.dead) == (1, 1, 0)
    assert calls(sandbox, "DELETE") == 1
    with pytest.raises(NotFoundError):
        planhat.get("companies", "srcid-c1")
    assert rows(engine, OutboxItem) == []
    assert rows(engine, RecordState) == []
    [link] = rows(engine, Link)
    assert link.deleted_at is not None
    # and a late webhook or the next crawl's item of it (older or newer) costs nothing
    before = sandbox_stats(sandbox)["requests"]
    assert offered(engine, company("c1", 3)) == "tombstoned"
    assert offered(engine, deleted("c1", 3)) == "tombstoned"
    assert flush(engine, planhat, limiter).calls == 0
    assert sandbox_stats(sandbox)["requests"] == before


def test_a_record_never_sent_is_tombstoned_without_a_call(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    # a ticket that never reached Planhat (a dead letter, say), then deleted in its source
    assert offered(engine, deleted("c1", 2)) == "tombstoned"
    assert offered(engine, company("c1", 3)) == "tombstoned"
    assert rows(engine, OutboxItem) == []
    assert flush(engine, planhat, limiter).calls == 0
    assert sandbox_stats(sandbox)["requests"] == 0


def test_a_pending_write_deleted_before_its_flush_costs_no_call(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    offered(engine, company("c1", 1))
    assert offered(engine, deleted("c1", 2)) == "queued"  # the pending write becomes it
    [row] = rows(engine, OutboxItem)
    assert row.revision == 2
    report = flush(engine, planhat, limiter)
    assert (report.deleted, report.calls) == (1, 0)
    assert rows(engine, OutboxItem) == []
    assert sandbox_stats(sandbox)["requests"] == 0


def test_the_source_creating_it_again_before_the_delete_went_out_cancels_it(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    offered(engine, company("c1", 1))
    flush(engine, planhat, limiter)
    offered(engine, deleted("c1", 2))
    # as Planhat still has it: no deletion left, and nothing to write
    assert offered(engine, replace(company("c1", 3), action="created")) == "unchanged"
    assert rows(engine, OutboxItem) == []
    assert calls(sandbox, "DELETE") == 0
    assert planhat.get("companies", "srcid-c1")["name"] == "Company c1"


def test_the_source_creating_it_again_after_the_delete_brings_it_back(
    engine: Engine, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    offered(engine, company("c1", 1))
    flush(engine, planhat, limiter)
    offered(engine, deleted("c1", 2))
    flush(engine, planhat, limiter)
    assert offered(engine, replace(company("c1", 3), action="created")) == "queued"
    assert flush(engine, planhat, limiter).written == 1
    assert planhat.get("companies", "srcid-c1")["name"] == "Company c1"


def test_a_404_on_delete_is_done(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    offered(engine, company("c1", 1))
    flush(engine, planhat, limiter)
    planhat.delete("companies", "srcid-c1")  # someone deleted it in Planhat meanwhile
    offered(engine, deleted("c1", 2))
    report = flush(engine, planhat, limiter)
    assert (report.deleted, report.dead) == (1, 0)
    assert rows(engine, DeadLetter) == []
    assert rows(engine, OutboxItem) == []


def refusing_deletes(sandbox: BackgroundSandbox) -> httpx.BaseTransport:
    """Planhat refusing every delete with a 400 and its reason; the rest is the sandbox."""
    upstream = httpx.HTTPTransport()

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(400, json={"error": "record is locked by a workflow"})
        return upstream.handle_request(request)

    return httpx.MockTransport(handle)


def test_a_refused_delete_is_a_dead_letter_with_planhats_answer_and_retries(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient, limiter: LocalRateLimiter
) -> None:
    offered(engine, company("c1", 1))
    flush(engine, planhat, limiter)
    offered(engine, deleted("c1", 2))
    with PlanhatClient("t", base_url=sandbox.url, retry=NO_WAIT,
                       transport=refusing_deletes(sandbox)) as refusing:  # fmt: skip
        report = flush(engine, refusing, limiter)
    assert (report.dead, report.deleted) == (1, 0)
    [letter] = rows(engine, DeadLetter)
    assert "locked by a workflow" in letter.reason
    # dlq retry deletes again (the tombstone alone does not stop it: Planhat still has it)
    [outcome] = dlq.retry(engine, [letter.id or 0])
    assert outcome.result == "queued"
    assert flush(engine, planhat, limiter).deleted == 1
    with pytest.raises(NotFoundError):
        planhat.get("companies", "srcid-c1")


def test_a_429_on_delete_pauses_the_shared_budget_without_an_attempt(
    engine: Engine, start_sandbox: Any, limiter: LocalRateLimiter
) -> None:
    sandbox = start_sandbox(SandboxConfig(rate_per_minute=1, burst=1))
    with PlanhatClient("t", base_url=sandbox.url, retry=NO_WAIT) as planhat:
        offered(engine, company("c1", 1))
        assert flush(engine, planhat, limiter).written == 1  # the one call the rate allows
        offered(engine, deleted("c1", 2))
        report = flush(engine, planhat, limiter)
    assert report.stopped
    assert report.deleted == 0
    assert report.retry_in
    [row] = rows(engine, OutboxItem)
    assert (row.attempts, row.claimed_until) == (0, None)
    assert limiter.try_acquire("b") > 0  # every worker on the token waits
    assert rows(engine, DeadLetter) == []
