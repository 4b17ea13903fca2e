"""One rate budget per Planhat token, shared by worker processes through Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.connections import add_connection
from state.crypto import SecretBox
from state.db import make_engine
from tests import stand_in_http
from tests.conftest import sandbox_stats
from tests.engine.harness import (
    Deployment,
    RedisServer,
    drained,
    engine_state,
    fresh_deployment,
    send_events,
    standard,
    wait_until,
)


@pytest.fixture
def planhat_like(start_sandbox: Callable[[SandboxConfig], BackgroundSandbox]) -> BackgroundSandbox:
    """Planhat's own limits: 200 requests a minute per token, bursts of 50."""
    return start_sandbox(SandboxConfig(rate_per_minute=200, burst=50))


@pytest.fixture
def system(
    redis_server: RedisServer, planhat_like: BackgroundSandbox, tmp_path: Path
) -> Iterator[Deployment]:
    with fresh_deployment(
        redis_server,
        planhat_like.url,
        tmp_path,
        # Two records a call, so the run needs far more calls than one burst allows.
        env_extra={"PLANHAT_SYNC_BATCH_SIZE": "2"},
    ) as deployment:
        yield deployment


def companies(connection: str, count: int) -> list[tuple[str, str, bytes]]:
    return [
        (
            connection,
            f"{connection}-{i}",
            standard("companies", f"{connection}_{i}", 1, {"name": f"C{i}"}),
        )
        for i in range(count)
    ]


@pytest.mark.timeout(600)  # its own waits have deadlines; a recovery may take minutes
def test_two_workers_share_one_budget_and_almost_never_meet_a_429(
    system: Deployment, planhat_like: BackgroundSandbox
) -> None:
    # given two tenants that happen to use the same Planhat token, one worker each
    engine = make_engine(system.database_url)
    for name in ("alpha", "beta"):
        add_connection(
            engine,
            SecretBox(system.secret_key),
            name=name,
            planhat_base_url=planhat_like.url,
            planhat_token="shared",
            secrets={},
        )
    engine.dispose()
    system.start_worker("worker-1")
    system.start_worker("worker-2")
    system.start("beat", "beat", "--loglevel", "warning")

    # when both push 100 records, 2 per call: 100 calls against 200/min with bursts of 50
    send_events(
        system.database_url, system.redis.url, companies("alpha", 100) + companies("beta", 100)
    )
    wait_until(lambda: drained(system.database_url), timeout=180, what="both tenants to drain")

    # then everything landed and at most 1% of the calls were answered 429
    stats = sandbox_stats(planhat_like)
    requests, limited = int(str(stats["requests"])), int(str(stats["rate_limited"]))
    print(f"\ntwo workers, one token: {requests} requests, {limited} answered 429")
    assert requests >= 100
    assert limited <= 0.01 * requests
    with PlanhatClient("check", base_url=planhat_like.url) as planhat:
        assert len(list(planhat.list("companies"))) == 200
    assert engine_state(system.database_url)["dead"] == 0


@pytest.mark.timeout(600)  # its own waits have deadlines; a recovery may take minutes
def test_a_429_storm_ends_with_everything_written_and_no_dead_letter(
    system: Deployment, planhat_like: BackgroundSandbox
) -> None:
    system.start_worker("worker-1")
    system.start_worker("worker-2")
    system.start("beat", "beat", "--loglevel", "warning")
    send_events(system.database_url, system.redis.url, companies("default", 60))

    # when, after a few calls, Planhat answers every call 429 for 5 seconds
    wait_until(
        lambda: int(str(sandbox_stats(planhat_like)["requests"])) >= 5,
        timeout=120,
        what="the first calls",
        every=0.05,
    )
    stand_in_http.post(f"{planhat_like.url}/_sandbox/faults", json={"rate_limit_storm_s": 5})
    wait_until(lambda: drained(system.database_url), timeout=180, what="the engine to drain")

    # then the storm was met, waited out, and cost nothing
    stats = sandbox_stats(planhat_like)
    print(f"\n429 storm: {stats['rate_limited']} answered 429 of {stats['requests']} requests")
    assert int(str(stats["rate_limited"])) > 0
    assert engine_state(system.database_url)["dead"] == 0
    with PlanhatClient("check", base_url=planhat_like.url) as planhat:
        assert len(list(planhat.list("companies"))) == 60
