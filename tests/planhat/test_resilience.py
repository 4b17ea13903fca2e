"""The client against a hostile Planhat: rate limits and injected 500s lose nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.planhat.bulk import SUCCESSES
from connectors.planhat.client import PlanhatClient
from connectors.planhat.retry import RetryPolicy
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests.conftest import sandbox_stats


def test_bulk_writes_survive_429s_and_500s_with_nothing_lost_or_duplicated(
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
) -> None:
    # given a Planhat that allows 20 calls/s in bursts of 10 and fails 20% of calls,
    # half of those after applying the write
    sandbox = start_sandbox(
        SandboxConfig(rate_per_minute=1200, burst=10, fail_rate=0.2, seed=20261126)
    )
    retry = RetryPolicy(attempts=12, base_delay=0.01, max_delay=0.2, max_rate_limit_wait=120)
    companies = [{"externalId": f"cus_{c}", "name": f"Customer {c}"} for c in range(20)]
    licenses: list[dict[str, Any]] = [
        {
            "sourceId": f"si_{i}",
            "companyId": f"extid-cus_{i % 20}",
            "product": "Pro",
            "_currency": "USD",
            "fromDate": "2026-01-01",
            "mrr": i,
        }
        for i in range(2000)
    ]

    # when a client writes 2,000 licenses in bulk, 50 per call
    with PlanhatClient("resilience", base_url=sandbox.url, retry=retry) as client:
        company_results = client.bulk_upsert("companies", companies, chunk_size=10)
        results = client.bulk_upsert("licenses", licenses, chunk_size=50)
        stored = list(client.list("licenses"))

    # then every record was written exactly once, with its own values
    assert all(result.outcome in SUCCESSES for result in company_results + results)
    assert len(stored) == 2000
    assert sorted(record["sourceId"] for record in stored) == sorted(
        record["sourceId"] for record in licenses
    )
    assert {record["sourceId"]: record["mrr"] for record in stored} == {
        record["sourceId"]: record["mrr"] for record in licenses
    }
    # and the hostile paths were really taken
    stats = sandbox_stats(sandbox)
    assert isinstance(stats["rate_limited"], int)
    assert isinstance(stats["injected_failures"], int)
    assert stats["rate_limited"] > 0
    assert stats["injected_failures"] > 0
    records = stats["records"]
    assert isinstance(records, dict)
    assert records["licenses"] == 2000
    assert records["companies"] == 20
