"""A change its source says is our own write coming back (``Change.echo_of_ours``: for
Zendesk, its last audit carries our origin tag) is dropped as an echo, even when its
fields differ from what we last wrote there (links.gate, on top of the hash rule)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Engine
from sqlmodel import select

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.db import session_scope
from state.tables import OutboxItem
from tests.engine.conftest import change
from worker.pipeline.flush import FlushPolicy, flush_batch
from worker.pipeline.ingest import offer
from worker.runtime.ratelimit import LocalRateLimiter


def test_a_change_marked_as_our_echo_is_dropped_once_the_record_is_linked(
    sqlite_engine: Engine, sandbox: BackgroundSandbox
) -> None:
    engine = sqlite_engine
    first = change("companies", "c1", 1, name="Acme")
    with session_scope(engine) as session:
        # no link yet: we never wrote to its source, so it cannot be our echo
        assert offer(session, "default", replace(first, echo_of_ours=True)) == "queued"
    with PlanhatClient("t", base_url=sandbox.url) as planhat:
        limiter = LocalRateLimiter(rate_per_minute=1e6, burst=100)
        flush_batch(engine, planhat, limiter, connection="default", model="companies",
                    budget="b", policy=FlushPolicy())  # fmt: skip
    ours = change("companies", "c1", 2, name="Acme (renamed by our write)")
    with session_scope(engine) as session:
        assert offer(session, "default", replace(ours, echo_of_ours=True)) == "echo"
        assert list(session.exec(select(OutboxItem))) == []
        # the same change not marked is a real change
        assert offer(session, "default", ours) == "queued"
