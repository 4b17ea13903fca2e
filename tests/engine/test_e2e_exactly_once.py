"""The engine end to end: 2 worker processes and beat on the real Redis and PostgreSQL.

5,000 changes over 500 records of 3 models, 20% duplicates, shuffled with older versions
arriving last, must end as exactly the newest version of every record in the sandbox,
with no duplicate, in about one Planhat call per model; a second run costs no call. The
same run survives a worker killed with SIGKILL mid-flush and a Redis restart.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
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

MODELS = {"companies": 100, "licenses": 200, "nps": 200}
VERSIONS = 8  # per record: 500 x 8 = 4,000 distinct changes, + 1,000 duplicates
BATCH = 500


def fields(model: str, key: str, version: int) -> dict[str, Any]:
    i = int(key.rsplit("_", 1)[1])
    company = f"srcid-co_{i % MODELS['companies']}"
    if model == "companies":
        return {"name": f"Company {i} v{version}", "phone": f"+1-555-{version:04}"}
    if model == "licenses":
        return {
            "companyId": company,
            "_currency": "USD",
            "fromDate": "2026-01-01",
            "product": f"Plan v{version}",
            "mrr": version * 10,
        }
    return {
        "cId": company,
        "email": f"user{i}@example.com",
        "score": version % 11,
        "comment": f"v{version}",
    }


def workload(seed: int) -> list[tuple[str, str, bytes]]:
    """5,000 (connection, event id, body): shuffled, 20% duplicates, old versions last."""
    rng = random.Random(seed)
    changes = [
        (model, f"{model[:2]}_{i}", version)
        for model, count in MODELS.items()
        for i in range(count)
        for version in range(1, VERSIONS + 1)
    ]
    events = [
        ("default", f"evt-{m}-{k}-{v}", standard(m, k, v, fields(m, k, v))) for m, k, v in changes
    ]
    rng.shuffle(events)
    # 1,000 duplicates of the oldest versions, arriving last: half redelivered with the
    # same event id (the inbox drops them), half as new events with the same content.
    old = [event for event in events if event[1].endswith(("-1", "-2"))]
    duplicates = rng.sample(old, 1000)
    redelivered = duplicates[:500]
    reissued = [(c, f"{eid}-again", body) for c, eid, body in duplicates[500:]]
    return events + redelivered + reissued


def expected_state() -> dict[str, dict[str, dict[str, Any]]]:
    return {
        model: {f"{model[:2]}_{i}": fields(model, f"{model[:2]}_{i}", VERSIONS) for i in range(n)}
        for model, n in MODELS.items()
    }


def check_planhat(url: str) -> dict[str, int]:
    """Every record exactly once, at its newest version. Returns records per model."""
    expected = expected_state()
    counts = {}
    with PlanhatClient("check", base_url=url) as planhat:
        company_ids = {c["sourceId"]: c["_id"] for c in planhat.list("companies")}
        for model, records in expected.items():
            stored = list(planhat.list(model))
            keys = [record["sourceId"] for record in stored]
            assert len(keys) == len(set(keys)), f"duplicate {model}"
            assert set(keys) == set(records), f"{model}: missing or extra records"
            for record in stored:
                want = records[record["sourceId"]]
                for name, value in want.items():
                    if name in ("companyId", "cId"):
                        value = company_ids[value.removeprefix("srcid-")]
                    assert record.get(name) == value, (model, record["sourceId"], name)
            counts[model] = len(stored)
    return counts


def planhat_puts(sandbox: BackgroundSandbox) -> dict[str, int]:
    by_route = sandbox_stats(sandbox)["by_route"]
    assert isinstance(by_route, dict)
    return {model: int(by_route.get(f"PUT /{model}", 0)) for model in MODELS}


@pytest.fixture
def deployment(
    redis_server: RedisServer,
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
    tmp_path: Path,
) -> Iterator[tuple[Deployment, BackgroundSandbox]]:
    sandbox = start_sandbox(SandboxConfig(rate_per_minute=1e9, burst=10**6))
    with fresh_deployment(
        redis_server, sandbox.url, tmp_path, env_extra={"PLANHAT_SYNC_BATCH_SIZE": str(BATCH)}
    ) as system:
        yield system, sandbox


@pytest.mark.timeout(600)  # its own waits have deadlines; a recovery may take minutes
def test_every_record_ends_at_its_newest_version_exactly_once_and_cheaply(
    deployment: tuple[Deployment, BackgroundSandbox],
) -> None:
    system, sandbox = deployment
    system.start_worker("worker-1")
    system.start_worker("worker-2")
    system.start("beat", "beat", "--loglevel", "warning")

    # when 5,000 changes arrive
    events = workload(seed=3)
    stored = send_events(system.database_url, system.redis.url, events)
    wait_until(lambda: drained(system.database_url), timeout=180, what="the engine to drain")

    # then Planhat holds exactly the newest version of each record, once
    assert stored == 4500  # 500 redeliveries were dropped by the inbox
    assert check_planhat(sandbox.url) == MODELS
    assert engine_state(system.database_url)["dead"] == 0
    calls = planhat_puts(sandbox)
    print(f"\nPlanhat bulk calls per model for 5,000 changes: {calls}")
    for model, count in MODELS.items():
        assert calls[model] <= math.ceil(count / BATCH) + 2, (model, calls)

    # and the same changes again, as new events, cost no Planhat call at all
    before = sandbox_stats(sandbox)
    again = [(c, f"{eid}-second-run", body) for c, eid, body in events[:4000]]
    send_events(system.database_url, system.redis.url, again)
    wait_until(lambda: drained(system.database_url), timeout=120, what="the second run")
    after = sandbox_stats(sandbox)
    extra = Counter(after["by_route"]) - Counter(before["by_route"])  # type: ignore[arg-type]
    assert after["requests"] == before["requests"], f"calls in the second run: {dict(extra)}"
    assert check_planhat(sandbox.url) == MODELS


@pytest.mark.timeout(600)  # its own waits have deadlines; a recovery may take minutes
def test_nothing_is_lost_when_a_worker_is_killed_mid_flush_and_redis_restarts(
    deployment: tuple[Deployment, BackgroundSandbox],
) -> None:
    system, sandbox = deployment
    # Planhat answers slowly, so a flush is surely in flight when the worker dies.
    stand_in_http.post(
        f"{sandbox.url}/_sandbox/faults", json={"latency_ms": 1500}
    ).raise_for_status()
    system.start_worker("worker-1")
    system.start_worker("worker-2")
    system.start("beat", "beat", "--loglevel", "warning")

    send_events(system.database_url, system.redis.url, workload(seed=4))

    def flushing() -> str | None:
        for name in ("worker-1", "worker-2"):
            if "flush.sending" in system.log(name):
                return name
        return None

    wait_until(lambda: flushing() is not None, timeout=180, what="a flush to start")
    victim = flushing()
    assert victim is not None
    system.kill(victim)  # SIGKILL in the middle of a Planhat call
    system.redis.restart()  # and every queued task is gone with it
    wait_until(lambda: drained(system.database_url), timeout=240, what="the engine to recover")

    assert check_planhat(sandbox.url) == MODELS
    assert engine_state(system.database_url)["dead"] == 0
    print(f"\nafter SIGKILL of {victim} and a Redis restart: {planhat_puts(sandbox)}")
