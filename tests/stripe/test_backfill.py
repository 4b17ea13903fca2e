"""Backfill of a Stripe account of 2,000 customers through the normal pipeline, on the
embedded engine, into the Planhat sandbox: everything lands once; interrupted by a 500
and run again, it goes on from the saved position and duplicates nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox, BackgroundServer
from connectors.stripe.backfill import as_event
from connectors.stripe.mapping import changes
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import make_engine, migrate, session_scope
from state.tables import Cursor, DeadLetter, InboxEvent
from tests.conftest import drain_embedded
from tests.stripe.list_stand_in import API_KEY, StripeAccount, customers, invoices, subscriptions
from tests.stripe.test_stripe import event_body
from tests.test_dev_flow import UNLIMITED
from worker.intake import backfill
from worker.intake.backfill import Tally
from worker.intake.poll import SourceApis
from worker.runtime.embedded import LocalDispatcher, embedded_runtime
from worker.runtime.jobs import Runtime
from worker.runtime.settings import EngineSettings

CUSTOMERS, SUBSCRIPTIONS, CANCELED, INVOICES = 2000, 300, 60, 150


@pytest.mark.parametrize(
    ("fixture", "event_type"),
    [
        ("customer.created", "customer.updated"),
        ("customer.subscription.created", "customer.subscription.updated"),
        ("invoice.paid", "invoice.updated"),
    ],
)
def test_an_object_read_maps_as_its_webhook_event_does(fixture: str, event_type: str) -> None:
    delivered = json.loads(event_body(fixture))
    obj = delivered["data"]["object"]

    event_id, body = as_event(obj, event_type, read_at=1_800_000_000)

    wrapped = changes(body, event_id, {})
    assert [(c.model, c.key, dict(c.fields)) for c in wrapped] == [
        (c.model, c.key, dict(c.fields)) for c in changes(event_body(fixture), "evt", {})
    ]
    assert {c.version for c in wrapped} == {1_800_000_000}  # as read then (and not empty)
    # The same object read again is the same event; changed, another one.
    assert as_event(obj, event_type, read_at=1_800_000_900)[0] == event_id
    assert as_event(obj | {"name": "Renamed"}, event_type, read_at=0)[0] != event_id


class Seen:
    """A ``Progress`` that keeps every tally it was shown."""

    def __init__(self) -> None:
        self.begun: list[tuple[str, bool]] = []
        self.finished: list[Tally] = []

    def begin(self, name: str, resumed: bool) -> None:
        self.begun.append((name, resumed))

    def advance(self, tally: Tally) -> None:
        pass

    def finish(self, tally: Tally) -> None:
        self.finished.append(tally)


class Backfilled:
    """The engine on SQLite, the Planhat sandbox, and the Stripe account stand-in."""

    def __init__(self, tmp_path: Path, account: StripeAccount) -> None:
        self.planhat = BackgroundSandbox(UNLIMITED).start()
        self.stripe = BackgroundServer(account.app).start()
        url = f"sqlite:///{tmp_path}/state.db"
        migrate(url)
        box = SecretBox(Fernet.generate_key().decode())
        self.tenant = Tenant(
            name="default",
            planhat_base_url=self.planhat.url,
            planhat_token="token",
            secrets={"stripe:api_key": API_KEY},
        )

        def connections(engine: Any) -> Connections:
            return Connections(engine, box=lambda: box, default=lambda: self.tenant)

        config = EngineSettings(
            flush_linger=0.05, batch_size=1000, rate_per_minute=1e6, burst=10**5
        )
        self.runtime: Runtime
        self.dispatcher: LocalDispatcher
        self.runtime, self.dispatcher = embedded_runtime(url, connections, config)
        self.dispatcher.start()
        self.apis = SourceApis(stripe=self.stripe.url)

    def backfill(self, since: int | None = None) -> tuple[list[Tally], Seen]:
        seen = Seen()
        found = backfill.readers(self.tenant, "stripe", self.apis, since)
        tallies = backfill.run(self.runtime.engine, self.tenant, "stripe", found, since=since,
                               submit=self.dispatcher.ingest, progress=seen)  # fmt: skip
        return tallies, seen

    def drain(self) -> None:
        drain_embedded(self.runtime.engine, self.dispatcher, timeout=60)

    def cursors(self) -> dict[str, str]:
        with session_scope(self.runtime.engine) as session:
            return {row.source: row.position for row in session.exec(select(Cursor))}

    def event_ids(self) -> list[str]:
        with session_scope(self.runtime.engine) as session:
            return list(session.exec(select(InboxEvent.event_id)))

    def planhat_records(self, model: str) -> list[dict[str, Any]]:
        with PlanhatClient("check", base_url=self.planhat.url) as planhat:
            return list(planhat.list(model))

    def close(self) -> None:
        self.dispatcher.stop()
        self.stripe.stop()
        self.planhat.stop()
        self.runtime.engine.dispose()


@pytest.fixture
def account() -> StripeAccount:
    return StripeAccount(
        customers=customers(CUSTOMERS),
        subscriptions=subscriptions(SUBSCRIPTIONS, canceled=CANCELED),
        invoices=invoices(INVOICES),
    )


@pytest.fixture
def system(tmp_path: Path, account: StripeAccount) -> Iterator[Backfilled]:
    running = Backfilled(tmp_path, account)
    yield running
    running.close()


def test_an_interrupted_backfill_resumes_and_lands_everything_once(
    system: Backfilled, account: StripeAccount
) -> None:
    # given: Stripe fails the 8th page of customers (7 stored before it)
    account.fail_at = 7

    # when: the first run stops there, and a second run is started with the same arguments
    with pytest.raises(httpx.HTTPStatusError):
        system.backfill()
    system.drain()
    stopped_at = json.loads(system.cursors()["backfill:stripe:customers"])
    companies_before = len(system.planhat_records("companies"))
    account.fail_at = None
    tallies, seen = system.backfill()
    system.drain()

    # then: the first run kept its position after 7 pages; the second went on from there
    assert stopped_at == {"since": None, "after": "cus_bf_01300"}  # newest first: 1999…1300
    assert companies_before == 700
    assert seen.begun == [("customers", True), ("subscriptions", False), ("invoices", False)]
    assert [(t.name, t.pages, t.stored, t.known) for t in tallies] == [
        ("customers", 13, 1300, 0),
        ("subscriptions", 3, SUBSCRIPTIONS, 0),
        ("invoices", 2, INVOICES, 0),
    ]
    # Stripe saw every page once, but the one in flight when it failed, twice.
    repeated = {page: n for page, n in account.pages_asked().items() if n > 1}
    assert repeated == {("customers", "cus_bf_01300"): 2}
    assert len(account.requests) == 20 + 3 + 2 + 1
    assert ("subscriptions", None) in account.requests  # and canceled ones were asked for
    assert system.cursors() == {}  # finished: no position left behind
    # Every object stored once, and everything in Planhat once.
    ids = system.event_ids()
    assert len(ids) == len(set(ids)) == CUSTOMERS + SUBSCRIPTIONS + INVOICES
    names = sorted(company["name"] for company in system.planhat_records("companies"))
    assert names == sorted(f"Customer {n}" for n in range(CUSTOMERS))
    licenses = system.planhat_records("licenses")
    assert sorted(license["sourceId"] for license in licenses) == [
        f"si_bf_{n:05d}" for n in range(SUBSCRIPTIONS)
    ]
    ended = [license for license in licenses if license.get("renewalStatus") == "lost"]
    assert len(ended) == CANCELED
    assert len(system.planhat_records("churn")) == CANCELED
    invoice_ids = sorted(invoice["extId"] for invoice in system.planhat_records("invoices"))
    assert invoice_ids == [f"in_bf_{n:05d}" for n in range(INVOICES)]
    with session_scope(system.runtime.engine) as session:
        assert list(session.exec(select(DeadLetter))) == []


def test_a_finished_backfill_run_again_stores_nothing_new(
    system: Backfilled, account: StripeAccount
) -> None:
    account.objects["customers"] = account.objects["customers"][-300:]  # those subscribing
    system.backfill()
    system.drain()

    tallies, seen = system.backfill()

    assert [(t.name, t.stored, t.known) for t in tallies] == [
        ("customers", 0, 300),
        ("subscriptions", 0, SUBSCRIPTIONS),
        ("invoices", 0, INVOICES),
    ]
    assert all(not resumed for _, resumed in seen.begun)


def test_since_reads_only_what_was_created_from_then(
    system: Backfilled, account: StripeAccount
) -> None:
    since = account.objects["customers"][99]["created"]  # the 100 newest customers

    tallies, _ = system.backfill(since=since)

    # Subscriptions and invoices of this account are all older.
    assert [(t.name, t.stored) for t in tallies] == [
        ("customers", 100),
        ("subscriptions", 0),
        ("invoices", 0),
    ]


class Killed(Exception):
    """The process ends here (a kill between two pages)."""


class KilledAfter(Seen):
    """A ``Progress`` whose process is killed once ``pages`` pages are stored."""

    def __init__(self, pages: int) -> None:
        super().__init__()
        self.pages = pages

    def advance(self, tally: Tally) -> None:
        if tally.pages == self.pages:
            raise Killed


STORE_ONLY = Tenant(name="default", planhat_base_url="http://127.0.0.1:9", planhat_token="t",
                    secrets={"stripe:api_key": API_KEY})  # fmt: skip


def store_only(
    tmp_path: Path, account: StripeAccount, progress: Seen, sleep: Any = None
) -> list[Tally]:
    """A backfill into a state store alone (no engine, no Planhat)."""
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    engine = make_engine(url)
    waits = {"sleep": sleep} if sleep else {}
    try:
        with BackgroundServer(account.app) as stripe:
            found = backfill.readers(STORE_ONLY, "stripe", SourceApis(stripe=stripe.url), None)
            return backfill.run(engine, STORE_ONLY, "stripe", found, since=None, submit=None,
                                progress=progress, **waits)  # fmt: skip
    finally:
        engine.dispose()


def test_killed_between_pages_it_goes_on_with_the_next_page(
    tmp_path: Path, account: StripeAccount
) -> None:
    account.objects["customers"] = account.objects["customers"][:450]

    with pytest.raises(Killed):
        store_only(tmp_path, account, KilledAfter(pages=2))
    tallies = store_only(tmp_path, account, Seen())

    customers = tallies[0]
    assert (customers.name, customers.pages, customers.stored, customers.resumed) == (
        "customers",
        3,
        250,
        True,
    )
    assert max(account.pages_asked().values()) == 1  # no page was in flight: none asked twice
    assert ("customers", "cus_bf_01800") in account.requests  # after the 200 newest


def test_a_429_waits_as_stripe_says_and_asks_for_the_page_again(
    tmp_path: Path, account: StripeAccount
) -> None:
    account.objects["customers"] = account.objects["customers"][:250]
    account.rate_limited_at = 1  # the second page of customers
    waited: list[float] = []

    tallies = store_only(tmp_path, account, Seen(), sleep=waited.append)

    assert waited == [1.0]
    assert tallies[0].stored == 250
    assert {page: n for page, n in account.pages_asked().items() if n > 1} == {
        ("customers", "cus_bf_01900"): 2
    }
