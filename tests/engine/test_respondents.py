"""Linking survey NPS to endusers and companies (connectors/surveys/respondents.py), against the
sandbox: what the directory reads and when, what is written, what is refused and why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.source import NoBudget
from connectors.surveys.respondents import Budget, Directories, link
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


def calls(sandbox: BackgroundSandbox, route: str) -> int:
    routes = sandbox_stats(sandbox)["by_route"]
    assert isinstance(routes, dict)
    return int(routes.get(route, 0))


def test_the_directory_of_endusers_is_read_once_per_ttl(
    sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    acme = planhat.create("companies", {"name": "Acme", "domains": ["acme.example"]})["_id"]
    ada = planhat.create("endusers", {"email": "Ada@acme.example", "companyId": acme})["_id"]
    clock = Clock()
    directories = Directories(ttl=300.0, clock=clock)

    first = directories.get("default", planhat, budget())
    directories.get("default", planhat, budget())  # cached
    clock.now += 301
    directories.get("default", planhat, budget())  # stale: read again

    assert first.endusers == {"ada@acme.example": (ada, acme)}
    assert calls(sandbox, "GET /endusers") == 2
    assert calls(sandbox, "GET /companies") == 0  # Planhat places respondents by domain


def test_without_rate_budget_the_directory_is_not_read(
    sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    spent = budget(burst=1)
    spent()

    with pytest.raises(NoBudget):
        Directories().get("default", planhat, spent)
    assert calls(sandbox, "GET /endusers") == 0


def test_link_has_planhat_make_missing_endusers_and_sets_aside_what_no_company_takes(
    sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    acme = planhat.create("companies", {"name": "Acme", "domains": ["acme.example"]})["_id"]
    directory = Directories().get("default", planhat, budget())
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
    # one upsert for the respondents, one for Lee on the fallback; each read back once
    assert (calls(sandbox, "PUT /endusers"), linked.calls) == (2, 4)
    assert calls(sandbox, "GET /endusers") == 1 + 2 + 1  # the directory, 2 read-backs, ours


def test_an_email_matches_its_enduser_whatever_its_case(
    sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    acme = planhat.create("companies", {"name": "Acme", "domains": ["acme.example"]})["_id"]
    ada = planhat.create("endusers", {"email": "ada@acme.example", "companyId": acme})["_id"]
    directory = Directories().get("default", planhat, budget())
    record = {"sourceId": "n-1", "email": "Ada@ACME.example", "score": 9}

    linked = link(directory, planhat, budget(), [record], [None])

    assert (linked.created, linked.refused, linked.calls) == (0, {}, 0)
    assert (linked.records[0]["cId"], linked.records[0]["euId"]) == (acme, ada)


def test_a_respondent_made_since_the_directory_was_read_is_found_not_made_twice(
    sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    # given: a directory read before another system made Ada's enduser
    acme = planhat.create("companies", {"name": "Acme"})["_id"]
    directory = Directories().get("default", planhat, budget())
    ada = planhat.create("endusers", {"email": "ada@acme.example", "companyId": acme})["_id"]
    record = {"sourceId": "n-1", "email": "ada@acme.example", "score": 9}

    # when: her NPS is linked (without the e-mail key Planhat would place a second Ada on
    # Acme, whose domains now hold hers)
    linked = link(directory, planhat, budget(), [record], [None])

    # then: Planhat matched her by e-mail, and the NPS is hers
    assert [e["_id"] for e in planhat.list("endusers")] == [ada]
    assert (linked.records[0]["cId"], linked.records[0]["euId"]) == (acme, ada)


def test_linking_twice_makes_one_enduser(
    sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    acme = planhat.create("companies", {"name": "Acme", "domains": ["acme.example"]})["_id"]
    record = {"sourceId": "n-1", "email": "kim@acme.example", "score": 9}

    # two engines, each with its own empty directory (a retry after losing the answer)
    for _ in range(2):
        directory = Directories().get("default", planhat, budget())
        directory.endusers.clear()
        [linked] = link(directory, planhat, budget(), [record], [None]).records
        assert linked["cId"] == acme

    assert [e["email"] for e in planhat.list("endusers")] == ["kim@acme.example"]
