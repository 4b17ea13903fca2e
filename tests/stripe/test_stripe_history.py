"""A generated Stripe history of 200 customers, in both API versions, delivered shuffled and
with duplicates through the receiver, ends in the Planhat sandbox as exactly what the
billing system holds (companies, licenses and MRR, invoices, sales, churn), nothing
duplicated; delivering and replaying all of it again makes no Planhat call."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from connectors.planhat.client import PlanhatClient
from connectors.stripe.verify import sign
from state.db import session_scope
from state.tables import DeadLetter
from tests.conftest import sandbox_stats
from tests.stripe.history import BASIL, OLD, History, history
from tests.test_dev_flow import STRIPE_SECRET, Embedded
from worker.pipeline.dlq import replay

# Delivering ~2,250 requests takes ~40 s here; with the drains, a loaded CI machine could
# pass pytest-timeout's default 120 s.
pytestmark = pytest.mark.timeout(600)

CUSTOMERS = 200
MODELS = ("companies", "endusers", "licenses", "invoices", "sales", "churn")
URL = "/webhooks/default/stripe"
SENDERS = 8  # concurrent deliveries, as Stripe sends them


@dataclass
class Delivered:
    system: Embedded
    history: History
    began: datetime  # before the first delivery: replay takes every event since
    statuses: dict[str, list[int]] = field(default_factory=dict)  # event id → answers
    planhat: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # model → records


def post(system: Embedded, body: bytes) -> int:
    headers = {
        "content-type": "application/json",
        "stripe-signature": sign(STRIPE_SECRET, int(time.time()), body),
    }
    return system.http.post(URL, content=body, headers=headers).status_code


def deliver(system: Embedded, bodies: Sequence[bytes]) -> list[int]:
    """Each body signed and posted to the receiver, ``SENDERS`` at a time; the answers."""
    with ThreadPoolExecutor(SENDERS) as senders:
        return list(senders.map(lambda body: post(system, body), bodies))


def puts(system: Embedded) -> dict[str, int]:
    by_route = sandbox_stats(system.planhat_a)["by_route"]
    assert isinstance(by_route, dict)
    return {model: int(by_route.get(f"PUT /{model}", 0)) for model in MODELS}


def requests(system: Embedded) -> int:
    count = sandbox_stats(system.planhat_a)["requests"]
    assert isinstance(count, int)
    return count


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivered]:
    """Every event of the history delivered once in a shuffled order, a fifth of them twice,
    drained, and what Planhat then holds."""
    # Default settings: a record whose customer arrives late (the burst is shuffled) waits,
    # or is buried, until its company is written, then goes out (worker/pipeline/parents.py).
    system = Embedded(tmp_path_factory.mktemp("history"))
    try:
        with system.http:  # one event loop for every request
            made = history(CUSTOMERS, seed=2025)
            rng = random.Random(11)
            bodies = {str(event["id"]): json.dumps(event).encode() for event in made.events}
            twice = rng.sample(sorted(bodies), k=len(bodies) // 5)
            order = [*bodies, *twice]
            rng.shuffle(order)
            result = Delivered(system, made, began=datetime.now(UTC) - timedelta(seconds=5))

            started = time.monotonic()
            answers = deliver(system, [bodies[event_id] for event_id in order])
            for event_id, answer in zip(order, answers, strict=True):
                result.statuses.setdefault(event_id, []).append(answer)
            posted = time.monotonic()
            system.drain(timeout=120)
            drained = time.monotonic()

            with PlanhatClient("check", base_url=system.planhat_a.url) as planhat:
                result.planhat = {model: list(planhat.list(model)) for model in MODELS}
            print(
                f"\n{len(bodies)} events ({dict(made.by_version())}) for {CUSTOMERS} customers, "
                f"{len(order)} deliveries ({len(twice)} duplicates): posted in "
                f"{posted - started:.1f} s, drained in {drained - posted:.1f} s"
                f"\nevents by type: {dict(made.by_type())}"
                f"\nPlanhat bulk calls per model: {puts(system)}"
                f"\nrecords per model: { {m: len(r) for m, r in result.planhat.items()} }"
            )
            yield result
    finally:
        system.close()


def by_key(records: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {record[key]: record for record in records}


def company_ids(delivered: Delivered) -> dict[str, str]:
    """Planhat's ``_id`` of each company → the Stripe customer id."""
    return {c["_id"]: c["externalId"] for c in delivered.planhat["companies"]}


def cents(amount: float) -> int:
    return round(amount * 100)


def test_every_event_is_accepted_once_and_every_duplicate_answered_as_one(
    delivered: Delivered,
) -> None:
    answers = Counter(tuple(sorted(statuses)) for statuses in delivered.statuses.values())

    assert set(delivered.statuses) == {str(e["id"]) for e in delivered.history.events}
    assert set(answers) <= {(202,), (200, 202)}, answers
    assert answers[(200, 202)] == len(delivered.history.events) // 5


def test_the_companies_and_endusers_are_exactly_the_customers(delivered: Delivered) -> None:
    expected = delivered.history.expected
    companies = {c["externalId"]: c["name"] for c in delivered.planhat["companies"]}
    endusers = {u["sourceId"]: (u["email"], u["name"]) for u in delivered.planhat["endusers"]}

    assert companies == expected.companies
    assert endusers == expected.endusers


def test_the_licenses_are_exactly_the_subscription_items(delivered: Delivered) -> None:
    expected = delivered.history.expected.licenses
    companies = company_ids(delivered)
    licenses = by_key(delivered.planhat["licenses"], "sourceId")

    assert set(licenses) == set(expected)
    for key, want in expected.items():
        got = licenses[key]
        assert (
            companies[got["companyId"]],
            got["product"],
            cents(got["mrr"]),
            got["_currency"],
            got["renewalStatus"],
            got["status"],
            got["fromDate"],
            got["renewalDate"],
            got.get("toDate"),
            got["autoRenews"],
        ) == (
            want.company,
            want.product,
            want.mrr_cents,
            "USD",
            want.renewal_status,
            want.status,
            want.from_date,
            want.renewal_date,
            want.to_date,
            want.to_date is None,
        ), key


def test_each_companys_mrr_equals_the_billing_systems_to_the_cent(delivered: Delivered) -> None:
    companies = company_ids(delivered)
    mrr: Counter[str] = Counter(dict.fromkeys(companies.values(), 0))
    for license_ in delivered.planhat["licenses"]:
        if license_["renewalStatus"] == "ongoing":
            mrr[companies[license_["companyId"]]] += cents(license_["mrr"])

    assert dict(mrr) == delivered.history.expected.mrr_cents
    print(f"\ntotal MRR {sum(mrr.values()) / 100:.2f} USD over {len(+mrr)} paying companies")


def test_the_invoices_are_exactly_stripes_with_their_status_and_amounts(
    delivered: Delivered,
) -> None:
    expected = delivered.history.expected.invoices
    companies = company_ids(delivered)
    invoices = by_key(delivered.planhat["invoices"], "extId")

    assert set(invoices) == set(expected)
    for key, want in expected.items():
        got = invoices[key]
        assert (
            companies[got["cId"]],
            got["status"],
            cents(got["amountTotal"]),
            got["invoiceDate"],
            got.get("paidDate"),
        ) == (
            want.company,
            want.status,
            want.total_cents,
            want.date,
            want.paid_date,
        ), key
    # What Planhat generates is Planhat's: one invoiceNo each, and no line items of ours.
    numbers = [got["invoiceNo"] for got in invoices.values()]
    assert len(set(numbers)) == len(numbers)
    assert all(got["lineItems"] == [] for got in invoices.values())


@pytest.mark.parametrize("version", [OLD, BASIL])
def test_the_one_off_lines_of_paid_invoices_are_the_sales(
    delivered: Delivered, version: str
) -> None:
    expected = {
        key: sale
        for key, sale in delivered.history.expected.sales.items()
        if sale.api_version == version
    }
    companies = company_ids(delivered)
    customers = {c for c, v in delivered.history.api_version.items() if v == version}
    sales = {
        sale["sourceId"]: sale
        for sale in delivered.planhat["sales"]
        if companies[sale["companyId"]] in customers
    }

    assert expected, "the history has paid one-off lines in this API version"
    assert {
        key: (companies[s["companyId"]], cents(s["value"]), s["salesDate"], s.get("product"),
              s.get("description"))
        for key, s in sales.items()
    } == {
        key: (s.company, s.value_cents, s.sales_date, s.product, s.description)
        for key, s in expected.items()
    }  # fmt: skip
    total = sum(s.value_cents for s in expected.values())
    assert (len(sales), sum(cents(s["value"]) for s in sales.values())) == (len(expected), total)


def test_each_cancellation_is_one_churn_record_of_the_mrr_lost(delivered: Delivered) -> None:
    companies = company_ids(delivered)
    churn = {
        c["sourceId"]: (companies[c["companyId"]], cents(c["value"]), c["churnDate"],
                        tuple(c.get("reasons") or ()), c["currency"])
        for c in delivered.planhat["churn"]
    }  # fmt: skip

    assert churn == {
        key: (c.company, c.value_cents, c.churn_date, c.reasons, "USD")
        for key, c in delivered.history.expected.churn.items()
    }


def test_nothing_is_duplicated_and_nothing_is_left_dead(delivered: Delivered) -> None:
    for model, records in delivered.planhat.items():
        for key in ("sourceId", "externalId", "extId"):
            keys = [record[key] for record in records if record.get(key)]
            assert len(keys) == len(set(keys)), (model, key)
    with session_scope(delivered.system.runtime.engine) as session:
        assert list(session.exec(select(DeadLetter))) == []


def test_delivering_and_replaying_everything_again_makes_no_planhat_call(
    delivered: Delivered,
) -> None:
    system, events = delivered.system, delivered.history.events
    before = requests(system)

    # every event delivered again (same event ids): each is a known duplicate
    started = time.monotonic()
    answers = Counter(deliver(system, [json.dumps(event).encode() for event in events]))
    system.drain(timeout=120)
    # and every stored event run again through mapping and diff
    replayed = time.monotonic()
    report = replay(system.runtime.engine, since=delivered.began)
    system.drain(timeout=120)
    done = time.monotonic()

    print(
        f"\nagain: {len(events)} deliveries in {replayed - started:.1f} s, {answers}; replay "
        f"{report} in {done - replayed:.1f} s; Planhat requests {before} → {requests(system)}"
    )
    assert answers == {200: len(events)}
    assert (report["events"], report["queued"]) == (len(events), 0)
    assert requests(system) == before
