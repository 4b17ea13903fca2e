"""Custom fields through the flush: no bulk call, keyed by name within their parent model
(https://www.planhat.com/developers/api/custom-field: no externalId/sourceId)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from connectors.change import Change
from connectors.planhat.client import PlanhatClient
from connectors.planhat.retry import RetryPolicy
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.standard.mapping import StandardBodyError, parse
from state.db import session_scope
from state.tables import OutboxItem, RecordState
from tests.conftest import sandbox_stats
from tests.engine.conftest import queue
from worker.pipeline.flush import FlushPolicy, flush_batch
from worker.runtime.ratelimit import LocalRateLimiter

NO_WAIT = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, max_rate_limit_wait=0)


def field(name: str, version: int, **fields: object) -> Change:
    return Change(
        model="customfields",
        key_field="name",
        key=name,
        fields={"parent": "company", "type": "text", "isHidden": False, **fields},
        version=version,
    )


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("t", base_url=sandbox.url, retry=NO_WAIT) as client:
        yield client


def flush(engine: Engine, planhat: PlanhatClient) -> None:
    flush_batch(
        engine,
        planhat,
        LocalRateLimiter(rate_per_minute=1e6, burst=1000),
        connection="default",
        model="customfields",
        budget="b",
        policy=FlushPolicy(),
    )


def test_a_custom_field_change_is_keyed_by_name_and_updates_in_place(
    engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    queue(engine, field("tier", 1))
    flush(engine, planhat)
    queue(engine, field("tier", 2, isHidden=True))
    flush(engine, planhat)

    [stored] = list(planhat.list("customfields"))
    assert (stored["name"], stored["isHidden"]) == ("tier", True)
    with session_scope(engine) as session:
        assert list(session.exec(select(OutboxItem))) == []
        [state] = session.exec(select(RecordState))
    assert (state.key, state.planhat_id) == ("name=tier@company", stored["_id"])
    routes = sandbox_stats(sandbox)["by_route"]
    assert isinstance(routes, dict)
    assert not any("srcid" in route or "extid" in route for route in routes)
    assert routes.get("PUT /customfields/:id") == 1


def test_a_custom_field_cannot_be_keyed_by_source_id() -> None:
    with pytest.raises(ValueError, match="keyed by name"):
        Change(model="customfields", key_field="sourceId", key="tier", fields={}, version=1)


def test_the_standard_source_keys_a_custom_field_by_name() -> None:
    body = {
        "model": "customfields",
        "key": {"name": "tier"},
        "fields": {"parent": "company", "type": "text", "isHidden": False},
        "version": 1,
    }

    [change] = parse(json.dumps(body).encode(), "e1")

    assert (change.key_field, change.key, change.record_key) == (
        "name",
        "tier",
        "name=tier@company",
    )
    with pytest.raises(StandardBodyError, match=re.escape("key must be one of {'name': …}")):
        parse(json.dumps({**body, "key": {"sourceId": "tier"}}).encode(), "e2")
