"""Chaos on PostgreSQL + Redis: three tenants, poison events of every kind, Planhat failing
one call in five and rate limiting, a worker SIGKILLed mid-flush. Every good record ends at
its newest version in its own tenant's Planhat, every poison event as exactly one dead
letter naming its cause, and nothing is left claimed or pending. (Drain times, with and
without poison, are measured by bench/bench_chaos.py, not here.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import select

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.connections import add_connection
from state.crypto import SecretBox
from state.db import make_engine, session_scope
from state.tables import DeadLetter, InboxEvent, OutboxItem
from tests import stand_in_http
from tests.engine.chaos import TENANTS, check_tenant, good_events, mix, poison, tenant_done
from tests.engine.harness import Deployment, RedisServer, fresh_deployment, send_events, wait_until

CHAOS_ENV = {
    "PLANHAT_SYNC_BACKOFF_BASE": "0.2",
    "PLANHAT_SYNC_BACKOFF_CAP": "2",
    "PLANHAT_SYNC_FLUSH_LINGER": "0.25",  # the default: flushes while events still arrive
}


def add_tenants(system: Deployment, sandboxes: dict[str, BackgroundSandbox]) -> None:
    engine = make_engine(system.database_url)
    try:
        for tenant, sandbox in sandboxes.items():
            add_connection(
                engine, SecretBox(system.secret_key), name=tenant, planhat_base_url=sandbox.url,
                planhat_token=f"token-{tenant}", secrets={"standard": f"whsec_{tenant}"},
            )  # fmt: skip
    finally:
        engine.dispose()


@pytest.mark.timeout(600)  # every wait below has its own deadline
def test_chaos_ends_with_every_good_record_applied_and_every_poison_buried_once(
    redis_server: RedisServer,
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
    tmp_path: Path,
) -> None:
    # given: each tenant's Planhat fails one call in five
    sandboxes = {
        tenant: start_sandbox(
            SandboxConfig(rate_per_minute=1e9, burst=10**6, fail_rate=0.2, seed=n)
        )
        for n, tenant in enumerate(TENANTS)
    }
    bad = poison(20)  # 1% of the events
    events = mix(good_events(seed=5), bad, seed=6)
    with fresh_deployment(redis_server, sandboxes[TENANTS[0]].url, tmp_path, CHAOS_ENV) as system:
        add_tenants(system, sandboxes)
        system.start_worker("worker-1")
        system.start_worker("worker-2")
        system.start("beat", "beat", "--loglevel", "warning")
        # Planhat is slow to answer, so a flush is surely in flight when a worker dies
        for sandbox in sandboxes.values():
            stand_in_http.post(f"{sandbox.url}/_sandbox/faults", json={"latency_ms": 300})

        # when the events arrive, the first tenant's Planhat starts a 429 storm ...
        send_events(system.database_url, system.redis.url, events)
        stand_in_http.post(f"{sandboxes[TENANTS[0]].url}/_sandbox/faults",
                   json={"rate_limit_storm_s": 3}).raise_for_status()  # fmt: skip

        # ... and a worker is killed in the middle of a Planhat call, then replaced
        def flushing() -> str | None:
            return next((n for n in ("worker-1", "worker-2") if "flush.sending" in system.log(n)),
                        None)  # fmt: skip

        wait_until(lambda: flushing() is not None, timeout=120, what="a flush to start")
        system.kill(flushing() or "")
        system.start_worker("worker-3")
        for sandbox in sandboxes.values():
            stand_in_http.post(f"{sandbox.url}/_sandbox/faults", json={"latency_ms": 0})

        def in_sync() -> bool:
            return all(tenant_done(sandboxes[t].url, t) for t in TENANTS)

        wait_until(in_sync, timeout=240, what="every tenant to be in sync", every=1.0)
        engine = make_engine(system.database_url)

        def settled() -> bool:
            with session_scope(engine) as session:
                pending = session.exec(select(InboxEvent).where(InboxEvent.status == "pending"))
                return pending.first() is None and session.exec(select(OutboxItem)).first() is None

        wait_until(settled, timeout=120, what="nothing pending or claimed")
        with session_scope(engine) as session:
            letters = list(session.exec(select(DeadLetter)))
        engine.dispose()

    # then: every good record once at its newest version, in its own tenant only
    for tenant in TENANTS:
        check_tenant(sandboxes[tenant].url, tenant)
    # and every poison event is exactly one dead letter that names its cause
    by_event = {letter.event_id: letter for letter in letters}
    assert len(letters) == len(bad) == len(by_event)
    for tenant, event_id, _, kind in bad:
        letter = by_event[event_id]
        assert (letter.connection, kind.cause in letter.reason) == (tenant, True), letter.reason
