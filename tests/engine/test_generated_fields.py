"""Fields Planhat writes itself are no change (connectors/planhat/generated.py): a record read
back with its timestamps and computed fields, offered again, costs no call, on SQLite and
PostgreSQL, against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from connectors.planhat.client import PlanhatClient
from connectors.planhat.generated import generated_fields
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.db import session_scope
from state.tables import OutboxItem, RecordState
from tests.conftest import FAST_RETRY, sandbox_stats
from tests.engine.conftest import change, queue
from worker.pipeline.flush import FlushPolicy, flush_batch
from worker.runtime.ratelimit import LocalRateLimiter

POLICY = FlushPolicy(batch_size=500, backoff_base=0.01, backoff_cap=0.02)
LICENSE = {"companyId": "srcid-c1", "_currency": "USD", "fromDate": "2026-01-01", "mrr": 10,
           "renewalDate": "2027-01-01"}  # fmt: skip


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("t", base_url=sandbox.url, retry=FAST_RETRY) as client:
        yield client


def flush(engine: Engine, planhat: PlanhatClient, model: str) -> None:
    limiter = LocalRateLimiter(rate_per_minute=1e6, burst=1000)
    flush_batch(engine, planhat, limiter, connection="default", model=model, budget="b",
                policy=POLICY)  # fmt: skip


def license_calls(sandbox: BackgroundSandbox) -> int:
    routes = sandbox_stats(sandbox)["by_route"]
    assert isinstance(routes, dict)
    return int(routes.get("PUT /licenses", 0))


def test_a_license_read_back_with_its_computed_fields_is_no_change(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    # given: a license pushed once
    queue(engine, change("companies", "c1", name="Acme"), change("licenses", "l1", **LICENSE))
    flush(engine, planhat, "companies")
    flush(engine, planhat, "licenses")
    # and read back with what Planhat computes (planhat.com/developers/api/license: arr,
    # companyName; renewalDaysFromNow; createdAt, updatedAt, __v)
    read = planhat.get("licenses", "srcid-l1")
    computed = {k: v for k, v in read.items() if k in generated_fields("licenses")}
    assert {"arr", "companyName", "renewalDaysFromNow", "createdAt", "__v"} <= set(computed)

    # when: the same change comes again, once as sent and once with those fields as read
    queue(
        engine,
        change("licenses", "l1", version=2, **LICENSE),
        change("licenses", "l1", version=3, **LICENSE, **computed),
    )
    flush(engine, planhat, "licenses")

    # then: nothing was queued, no call was made, and nothing computed was remembered
    with session_scope(engine) as session:
        assert list(session.exec(select(OutboxItem))) == []
        state = session.exec(select(RecordState).where(RecordState.model == "licenses")).one()
    assert (license_calls(sandbox), state.version) == (1, 3)
    assert generated_fields("licenses").isdisjoint(state.fields)


def test_a_real_change_beside_computed_fields_sends_only_what_can_change(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    queue(engine, change("companies", "c1", name="Acme"), change("licenses", "l1", **LICENSE))
    flush(engine, planhat, "companies")
    flush(engine, planhat, "licenses")

    queue(engine, change("licenses", "l1", version=2, **{**LICENSE, "mrr": 20, "arr": 1}))
    with session_scope(engine) as session:
        [row] = session.exec(select(OutboxItem)).all()
        assert "arr" not in row.fields
    flush(engine, planhat, "licenses")

    assert license_calls(sandbox) == 2
    assert planhat.get("licenses", "srcid-l1")["arr"] == 240  # Planhat's, from the new mrr
