"""Linking survey NPS to endusers and companies (connectors/surveys/respondents.py), against the
sandbox: what the directory reads and when, what is created, what is refused and why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.source import NoBudget
from connectors.surveys.respondents import FRESH, Budget, Directories, link
from tests.conftest import sandbox_stats
from worker.runtime.ratelimit import LocalRateLimiter, budget_taker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("t", base_url=sandbox.url) as client:
        yield client


def budget(burst: int = 1000) -> Budget:
    return budget_taker(LocalRateLimiter(rate_per_minute=1e-3, burst=burst), "b", max_wait=0.0)


def reads(sandbox: BackgroundSandbox) -> int:
    routes = sandbox_stats(sandbox)["by_route"]
    assert isinstance(routes, dict)
    return int(routes.get("GET /companies", 0)) + int(routes.get("GET /endusers", 0))


def test_the_directory_is_read_once_then_again_only_for_a_stranger_after_a_while(
    sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    acme = planhat.create("companies", {"name": "Acme", "domains": ["acme.example"]})["_id"]
    planhat.create("endusers", {"email": "ada@acme.example", "companyId": acme})
    clock = Clock()
    directories = Directories(ttl=300.0, clock=clock)

    first = directories.get("default", planhat, budget(), ["ada@acme.example"])
    directories.get("default", planhat, budget(), ["ada@acme.example"])  # cached
    directories.get("default", planhat, budget(), ["new@acme.example"])  # stranger, too soon
    after_three = reads(sandbox)
    clock.now += FRESH + 1
    directories.get("default", planhat, budget(), ["new@acme.example"])  # stranger: read again

    assert first.companies == {"acme.example": acme}
    assert set(first.endusers) == {"ada@acme.example"}
    assert (after_three, reads(sandbox)) == (2, 4)


def test_without_rate_budget_the_directory_is_not_read(
    sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    spent = budget(burst=1)
    spent()

    with pytest.raises(NoBudget):
        Directories().get("default", planhat, spent, ["ada@acme.example"])
    assert reads(sandbox) == 0


def test_link_creates_missing_endusers_in_one_call_and_sets_aside_what_no_company_takes(
    sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    acme = planhat.create("companies", {"name": "Acme", "domains": ["acme.example"]})["_id"]
    directory = Directories().get("default", planhat, budget(), [])
    records = [
        {"sourceId": "typeform-1", "email": "ada@acme.example", "score": 9, "source": "typeform"},
        {"sourceId": "typeform-2", "email": "ada@acme.example", "score": 7, "source": "typeform"},
        {"sourceId": "x-3", "email": "kim@nowhere.example", "score": 5},
        {
            "sourceId": "typeform-4",
            "email": "lee@nowhere.example",
            "score": 5,
            "source": "typeform",
        },
    ]

    linked = link(directory, planhat, budget(), records, [None, None, None, "extid-fallback"])

    assert linked.created == 1  # Ada once; Lee's fallback company does not exist: refused
    [ada] = [e for e in planhat.list("endusers") if e["email"] == "ada@acme.example"]
    assert [(r["cId"], r["euId"]) for r in linked.records[:2]] == [(acme, ada["_id"])] * 2
    # Kim's domain is no company's (yet): Kim waits, and is buried only after the tries
    assert linked.unknown[2].endswith(
        "add the domain to its company in Planhat, or send the record with its cId, "
        "then retry this dead letter"
    )
    assert linked.refused[3].startswith("Planhat did not create the enduser lee@nowhere.example")
    assert sandbox_stats(sandbox)["by_route"]["PUT /endusers"] == 1


def test_an_email_matches_its_enduser_whatever_its_case(
    sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    acme = planhat.create("companies", {"name": "Acme", "domains": ["acme.example"]})["_id"]
    ada = planhat.create("endusers", {"email": "ada@acme.example", "companyId": acme})["_id"]
    directory = Directories().get("default", planhat, budget(), [])
    record = {"sourceId": "n-1", "email": "Ada@ACME.example", "score": 9}

    linked = link(directory, planhat, budget(), [record], [None])

    assert (linked.created, linked.refused) == (0, {})
    assert (linked.records[0]["cId"], linked.records[0]["euId"]) == (acme, ada)
