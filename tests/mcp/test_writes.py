"""Safe writes: a dry run shows the exact diff and writes nothing; a real write with
writes on is exactly one Planhat call; a delete needs confirmation; every call takes from
the token's shared rate budget. Counted by the sandbox's own request counter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from connectors.planhat.client import PlanhatClient
from connectors.planhat.retry import RetryPolicy
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests import stand_in_http
from tests.mcp.tools import PLANHAT_TOKEN, call, context, planhat_calls, server_for
from worker.mcp_server.server import build_server
from worker.runtime.ratelimit import LocalRateLimiter, budget_key


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient(PLANHAT_TOKEN, base_url=sandbox.url) as client:
        yield client


class Calls:
    """Planhat calls the sandbox counted since ``start()``, by route."""

    def __init__(self, sandbox: BackgroundSandbox) -> None:
        self._sandbox = sandbox
        self._before: dict[str, int] = {}

    def start(self) -> None:
        self._before = planhat_calls(self._sandbox)

    def since_start(self) -> dict[str, int]:
        now = planhat_calls(self._sandbox)
        counted = {route: n - self._before.get(route, 0) for route, n in now.items()}
        return {route: n for route, n in counted.items() if n}


@pytest.fixture
def calls(sandbox: BackgroundSandbox) -> Calls:
    return Calls(sandbox)


@pytest.fixture
def acme(planhat: PlanhatClient, calls: Calls) -> str:
    """A company in Planhat, made before counting starts; its _id."""
    record = planhat.create(
        "companies",
        {"name": "Acme", "sourceId": "acme", "phase": "onboarding", "custom": {"tier": "gold"}},
    )
    calls.start()
    return str(record["_id"])


def test_a_dry_run_update_returns_the_exact_diff_and_writes_nothing(
    sqlite_engine: Engine,
    sandbox: BackgroundSandbox,
    planhat: PlanhatClient,
    calls: Calls,
    acme: str,
) -> None:
    change = {
        "name": "Acme Inc",
        "phase": "onboarding",
        "custom": {"tier": "platinum", "csm": "Li"},
    }

    result = call(server_for(sqlite_engine, sandbox, writes=True), "update_companies",
                  {"id": "srcid-acme", "data": change})  # fmt: skip

    assert not result.is_error, result.content
    answer = result.structured_content
    assert answer is not None
    assert answer["changes"] == [
        {"field": "name", "before": "Acme", "after": "Acme Inc", "new": False},
        {"field": "custom.tier", "before": "gold", "after": "platinum", "new": False},
        {"field": "custom.csm", "before": None, "after": "Li", "new": True},
    ]
    assert answer["unchanged"] == ["phase"]
    assert (answer["dry_run"], answer["written"], answer["target"]) == (True, False, "srcid-acme")
    assert answer["message"] == "planned: 3 field(s) would change; nothing written"
    # 0 writes: the one call is the GET the diff is made against
    assert calls.since_start() == {"GET /companies/:id": 1}
    assert planhat.get("companies", acme)["name"] == "Acme"


def test_a_real_update_with_writes_on_is_exactly_one_planhat_call(
    sqlite_engine: Engine,
    sandbox: BackgroundSandbox,
    planhat: PlanhatClient,
    calls: Calls,
    acme: str,
) -> None:
    result = call(server_for(sqlite_engine, sandbox, writes=True), "update_companies",
                  {"id": acme, "data": {"name": "Acme Inc"}, "dry_run": False})  # fmt: skip

    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["written"] is True
    assert calls.since_start() == {"PUT /companies/:id": 1}
    assert planhat.get("companies", acme)["name"] == "Acme Inc"


def test_a_delete_without_confirmation_is_refused_with_what_to_do(
    sqlite_engine: Engine,
    sandbox: BackgroundSandbox,
    planhat: PlanhatClient,
    calls: Calls,
    acme: str,
) -> None:
    server = server_for(sqlite_engine, sandbox, writes=True)

    refused = call(server, "delete_companies", {"id": acme, "dry_run": False})
    wrong = call(server, "delete_companies", {"id": acme, "dry_run": False, "confirm": "srcid-x"})

    for answer in (refused, wrong):
        assert answer.is_error
        text = str(answer.content)
        assert f"needs confirm='{acme}' (the same id)" in text
        assert "Ask the user to confirm this deletion, then call again with confirm set" in text
    assert calls.since_start() == {}
    assert planhat.get("companies", acme)["name"] == "Acme"
    calls.start()

    done = call(server, "delete_companies", {"id": acme, "dry_run": False, "confirm": acme})

    assert not done.is_error, done.content
    assert calls.since_start() == {"DELETE /companies/:id": 1}


def test_a_delete_with_writes_off_is_refused_even_when_confirmed(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, calls: Calls, acme: str
) -> None:
    answer = call(server_for(sqlite_engine, sandbox), "delete_companies",
                  {"id": acme, "dry_run": False, "confirm": acme})  # fmt: skip

    assert answer.is_error
    assert "writes are off" in str(answer.content)
    assert calls.since_start() == {}


def test_every_call_takes_from_the_token_s_shared_budget(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, calls: Calls, acme: str
) -> None:
    # given a budget of one call a minute, shared with (say) the workers' flushes
    ctx = context(sqlite_engine, sandbox)
    ctx.limiter = LocalRateLimiter(rate_per_minute=1, burst=1)
    ctx.max_budget_wait = 0.0
    server = build_server(ctx)

    first = call(server, "get_companies", {"id": acme})
    second = call(server, "list_companies", {})

    assert not first.is_error
    assert second.is_error
    assert "the Planhat rate budget of this token is used up for now" in str(second.content)
    assert calls.since_start() == {"GET /companies/:id": 1}  # the refused one never went
    assert ctx.limiter.try_acquire(budget_key(PLANHAT_TOKEN)) > 0  # the same budget, spent


def test_a_429_pauses_every_caller_of_the_token(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, calls: Calls, acme: str
) -> None:
    # given Planhat answering 429 without saying for how long
    faults = {"rate_limit_storm_s": 30, "retry_after": False}
    stand_in_http.post(f"{sandbox.url}/_sandbox/faults", json=faults).raise_for_status()
    ctx = context(sqlite_engine, sandbox)
    ctx.retry = RetryPolicy(max_rate_limit_wait=0)  # the tool gives up at the first 429

    answer = call(build_server(ctx), "get_companies", {"id": acme})

    assert answer.is_error
    assert "Planhat is rate limiting this token (429): try again in" in str(answer.content)
    # the budget every worker on this token shares is paused for the first guess (15 s)
    wait = ctx.limiter.try_acquire(budget_key(PLANHAT_TOKEN))
    assert 10 < wait <= 15  # (seconds have passed since, on a loaded machine)
