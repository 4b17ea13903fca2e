"""The Planhat sandbox's gate and lifecycle: auth, rate limits, injected faults, stats,
persistence, and the per-model limits of Planhat's API (lists, bulk-only and no-bulk models).

Plain httpx against the sandbox's socket; the token bucket is driven by a fake clock, so
nothing here waits on time.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

import httpx
import pytest

from connectors.planhat.sandbox import SandboxConfig, create_app
from connectors.planhat.sandbox.limiter import TokenBucket
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests import stand_in_http
from tests.conftest import sandbox_stats
from tests.planhat.sandbox_http import (
    Start,
    basic,
    client_for,
    company_without_source_id,
    create,
    listing,
)

# --- auth --------------------------------------------------------------------------------


@pytest.fixture
def guarded(start_sandbox: Start) -> BackgroundSandbox:
    """A sandbox that knows one token: "good"."""
    config = SandboxConfig(tokens=frozenset({"good"}), rate_per_minute=1e9, burst=1_000_000)
    return start_sandbox(config)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer bad", "good", "Token good", basic("bad:"), "Basic !!"],
)
def test_a_request_without_a_known_token_is_401_and_writes_nothing(
    guarded: BackgroundSandbox, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = stand_in_http.post(f"{guarded.url}/companies", json={"name": "A"}, headers=headers)

    assert response.status_code == 401
    assert sandbox_stats(guarded)["records"]["companies"] == 0  # type: ignore[index]


def test_an_empty_bearer_token_is_401(guarded: BackgroundSandbox) -> None:
    # httpx refuses to send a header value ending in a space, so write the request by hand.
    request = (
        b"GET /companies HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Bearer \r\n"
        b"Connection: close\r\n\r\n"
    )
    with socket.create_connection((guarded.host, guarded.port), timeout=10) as conn:
        conn.sendall(request)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk

    assert reply.startswith(b"HTTP/1.1 401 ")


@pytest.mark.parametrize("authorization", ["Bearer good", "bearer good", basic("good:")])
def test_a_known_token_is_accepted_as_bearer_or_basic(
    guarded: BackgroundSandbox, authorization: str
) -> None:
    response = stand_in_http.get(
        f"{guarded.url}/companies", headers={"Authorization": authorization}
    )

    assert response.status_code == 200
    assert response.json() == []


def test_any_non_empty_token_is_accepted_when_none_are_configured(
    sandbox: BackgroundSandbox,
) -> None:
    response = stand_in_http.get(f"{sandbox.url}/companies", headers={"Authorization": "Bearer x"})

    assert response.status_code == 200


def test_the_sandbox_routes_need_no_token(guarded: BackgroundSandbox) -> None:
    with client_for(guarded, "good") as api:
        company_without_source_id(api, "acme")

    stats = stand_in_http.get(f"{guarded.url}/_sandbox/stats")
    reset = stand_in_http.post(f"{guarded.url}/_sandbox/reset")

    assert stats.status_code == 200
    assert stats.json()["records"]["companies"] == 1
    assert reset.status_code == 200
    assert sandbox_stats(guarded)["records"]["companies"] == 0  # type: ignore[index]


# --- rate limits over HTTP ---------------------------------------------------------------

# A bucket of 3 that refills one call per 10 s: three quick calls drain it and the
# fourth is refused, however slow the machine (it would need 10 s to earn a call back).
SLOW = SandboxConfig(rate_per_minute=6, burst=3)


def test_a_request_over_the_burst_is_429_with_retry_after_and_limit_headers(
    start_sandbox: Start,
) -> None:
    with client_for(start_sandbox(SLOW)) as api:
        allowed = [api.get("/companies") for _ in range(3)]
        refused = api.get("/companies")

    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r.headers["X-Rate-Limit-Remaining"] for r in allowed] == ["2", "1", "0"]
    assert refused.status_code == 429
    assert refused.text == "Too many requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    assert refused.headers["X-Rate-Limit-Limit"] == "6"
    assert refused.headers["X-Rate-Limit-Remaining"] == "0"


def test_rate_limits_are_per_token(start_sandbox: Start) -> None:
    sandbox = start_sandbox(SLOW)
    with client_for(sandbox, "a") as first, client_for(sandbox, "b") as second:
        for _ in range(3):
            first.get("/companies")

        assert first.get("/companies").status_code == 429
        assert second.get("/companies").status_code == 200
        assert first.get("/companies").status_code == 429


def test_a_refused_write_is_not_applied_and_is_counted_in_stats(start_sandbox: Start) -> None:
    sandbox = start_sandbox(SLOW)
    with client_for(sandbox) as api:
        answers = [api.post("/companies", json={"name": f"C{i}"}).status_code for i in range(5)]

    stats = sandbox_stats(sandbox)
    assert answers == [200, 200, 200, 429, 429]
    assert stats["rate_limited"] == 2
    assert stats["requests"] == 5
    assert stats["records"]["companies"] == 3  # type: ignore[index]


def test_reset_refills_the_rate_limit_buckets(start_sandbox: Start) -> None:
    sandbox = start_sandbox(SandboxConfig(rate_per_minute=0.001, burst=1))
    with client_for(sandbox) as api:
        assert api.get("/companies").status_code == 200
        assert api.get("/companies").status_code == 429

        stand_in_http.post(f"{sandbox.url}/_sandbox/reset").raise_for_status()

        assert api.get("/companies").status_code == 200


# --- the token bucket, on a fake clock ---------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drain(bucket: TokenBucket, key: str, count: int) -> None:
    for _ in range(count):
        assert bucket.take(key).allowed


def test_a_bucket_allows_its_burst_then_refuses() -> None:
    bucket = TokenBucket(60, 3, clock=FakeClock())

    decisions = [bucket.take("t") for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after == 1


def test_a_bucket_refills_at_rate_per_minute_over_60_each_second() -> None:
    clock = FakeClock()
    bucket = TokenBucket(30, 2, clock=clock)  # half a call per second
    drain(bucket, "t", 2)

    assert bucket.take("t").retry_after == 2
    clock.now += 1.0  # half a call earned: not enough
    assert not bucket.take("t").allowed
    clock.now += 1.0  # a whole call
    assert bucket.take("t").allowed
    assert not bucket.take("t").allowed


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, 3, clock=clock)
    drain(bucket, "t", 3)
    clock.now += 3600

    first = bucket.take("t")
    drain(bucket, "t", 2)

    assert first.remaining == 2
    assert not bucket.take("t").allowed


@pytest.mark.parametrize(("rate", "wait"), [(7, 60 / 7), (6, 10), (120, 0.5), (600, 0.1)])
def test_retry_after_is_the_wait_for_one_call_rounded_up_to_a_whole_second(
    rate: float, wait: float
) -> None:
    bucket = TokenBucket(rate, 1, clock=FakeClock())
    drain(bucket, "t", 1)

    assert bucket.take("t").retry_after == max(1, math.ceil(wait))


def test_buckets_are_per_key_and_reset_refills_them() -> None:
    bucket = TokenBucket(1, 1, clock=FakeClock())
    drain(bucket, "a", 1)

    assert not bucket.take("a").allowed
    assert bucket.take("b").allowed
    bucket.reset()
    assert bucket.take("a").allowed


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-60, 1), (60, 0)])
def test_a_bucket_refuses_a_rate_or_burst_it_cannot_honour(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate_per_minute"):
        TokenBucket(rate, burst)


# --- injected faults ---------------------------------------------------------------------


def statuses(sandbox: BackgroundSandbox, count: int) -> list[int]:
    with client_for(sandbox) as api:
        return [api.get("/companies").status_code for _ in range(count)]


def test_fail_rate_one_answers_every_api_request_500(start_sandbox: Start) -> None:
    sandbox = start_sandbox(SandboxConfig(rate_per_minute=1e9, burst=10**6, fail_rate=1.0, seed=1))

    answers = statuses(sandbox, 20)

    assert answers == [500] * 20
    assert sandbox_stats(sandbox)["injected_failures"] == 20


def test_fail_rate_half_fails_some_requests_but_not_all(start_sandbox: Start) -> None:
    config = SandboxConfig(rate_per_minute=1e9, burst=10**6, fail_rate=0.5, seed=20261126)
    sandbox = start_sandbox(config)

    answers = statuses(sandbox, 200)

    failed = answers.count(500)
    assert 0 < failed < 200
    assert answers.count(200) == 200 - failed
    assert sandbox_stats(sandbox)["injected_failures"] == failed


def test_the_same_seed_injects_the_same_failures(start_sandbox: Start) -> None:
    config = SandboxConfig(rate_per_minute=1e9, burst=10**6, fail_rate=0.3, seed=7)

    assert statuses(start_sandbox(config), 50) == statuses(start_sandbox(config), 50)


@pytest.mark.parametrize("fail_rate", [-0.1, 1.01, math.nan])
def test_a_fail_rate_outside_0_to_1_is_refused(fail_rate: float) -> None:
    with pytest.raises(ValueError, match="fail_rate"):
        create_app(SandboxConfig(fail_rate=fail_rate))


# --- stats and reset ---------------------------------------------------------------------


def test_stats_count_requests_by_route(sandbox: BackgroundSandbox, api: httpx.Client) -> None:
    acme = company_without_source_id(api, "acme")
    api.get(f"/companies/{acme['_id']}")
    api.get("/companies/extid-acme")
    api.put("/licenses", json=[])
    api.get("/companies")

    stats = sandbox_stats(sandbox)

    assert stats["requests"] == 5
    assert stats["by_route"] == {
        "POST /companies": 1,
        "GET /companies/:id": 2,
        "PUT /licenses": 1,
        "GET /companies": 1,
    }
    assert stats["records"]["companies"] == 1  # type: ignore[index]


def test_reset_clears_records_and_counters(sandbox: BackgroundSandbox, api: httpx.Client) -> None:
    company_without_source_id(api, "acme")
    api.get("/companies")

    response = stand_in_http.post(f"{sandbox.url}/_sandbox/reset")

    stats = sandbox_stats(sandbox)
    assert response.status_code == 200
    assert (stats["requests"], stats["by_route"], stats["rate_limited"]) == (0, {}, 0)
    assert stats["injected_failures"] == 0
    assert set(stats["records"].values()) == {0}  # type: ignore[attr-defined]
    assert listing(api, "companies") == []
    assert api.get("/companies/extid-acme").status_code == 404


# --- persistence -------------------------------------------------------------------------


def on_file(path: Path) -> SandboxConfig:
    return SandboxConfig(db_path=str(path), rate_per_minute=1e9, burst=1_000_000)


def test_records_survive_a_restart_on_the_same_file(start_sandbox: Start, tmp_path: Path) -> None:
    first = start_sandbox(on_file(tmp_path / "p.db"))
    with client_for(first) as api:
        acme = company_without_source_id(api, "acme", sourceId="s-acme")
        beta = company_without_source_id(api, "beta")
        api.put("/companies/extid-acme", json={"phone": "1"}).raise_for_status()
        project = create(api, "projects", {"name": "P", "companyId": "extid-beta"})
        before = listing(api, "companies")
    first.stop()

    second = start_sandbox(on_file(tmp_path / "p.db"))
    with client_for(second) as api:
        after = listing(api, "companies")
        assert [c["_id"] for c in after] == [acme["_id"], beta["_id"]]
        assert {c["_id"]: c for c in after} == {c["_id"]: c for c in before}
        assert api.get("/companies/srcid-s-acme").json()["phone"] == "1"
        assert api.get("/projects/" + project["_id"]).json()["companyId"] == beta["_id"]
        # the indexes are rebuilt: a re-upsert by externalId updates, it does not insert
        answer = api.put("/companies", json=[{"externalId": "beta", "name": "B2"}]).json()
        assert (answer["created"], answer["updated"]) == (0, 1)


def test_deletes_survive_a_restart(start_sandbox: Start, tmp_path: Path) -> None:
    first = start_sandbox(on_file(tmp_path / "p.db"))
    with client_for(first) as api:
        company_without_source_id(api, "acme")
        beta = company_without_source_id(api, "beta")
        api.delete("/companies/extid-acme").raise_for_status()
    first.stop()

    second = start_sandbox(on_file(tmp_path / "p.db"))
    with client_for(second) as api:
        assert [c["_id"] for c in listing(api, "companies")] == [beta["_id"]]
        assert api.get("/companies/extid-acme").status_code == 404


def test_a_reset_empties_the_file_too(start_sandbox: Start, tmp_path: Path) -> None:
    first = start_sandbox(on_file(tmp_path / "p.db"))
    with client_for(first) as api:
        company_without_source_id(api, "acme")
    stand_in_http.post(f"{first.url}/_sandbox/reset").raise_for_status()
    first.stop()

    second = start_sandbox(on_file(tmp_path / "p.db"))
    with client_for(second) as api:
        assert listing(api, "companies") == []
