"""The Stripe poller against a fake of Stripe's events API (an httpx MockTransport)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from connectors.planhat.client import PlanhatClient
from connectors.stripe.poll import FEED as STRIPE
from connectors.stripe.poll import events_since, stripe_client
from state.db import session_scope
from state.inbox import store_event
from state.tables import Cursor, InboxEvent
from tests.stripe.test_stripe import event_body
from tests.test_dev_flow import Embedded
from worker.intake.poll import poll


class FakeStripe:
    """``GET /v1/events``: newest first, ``created[gte]``, ``limit``, ``starting_after``."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = sorted(events, key=lambda e: (e["created"], e["id"]), reverse=True)
        self.calls: list[httpx.QueryParams] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer sk_test_fake"
        params = request.url.params
        self.calls.append(params)
        matching = [e for e in self.events if e["created"] >= int(params["created[gte]"])]
        if "starting_after" in params:
            ids = [e["id"] for e in matching]
            matching = matching[ids.index(params["starting_after"]) + 1 :]
        limit = int(params["limit"])
        return httpx.Response(
            200,
            json={"object": "list", "data": matching[:limit], "has_more": len(matching) > limit},
        )

    def client(self) -> httpx.Client:
        return stripe_client(
            "sk_test_fake", "https://stripe.test", transport=httpx.MockTransport(self.handle)
        )


def customers(count: int, start: int = 1_700_000_000) -> list[dict[str, Any]]:
    template = json.loads(event_body("customer.created"))
    events = []
    for n in range(count):
        event = json.loads(json.dumps(template))
        event["id"] = f"evt_poll_{n}"
        event["created"] = start + n
        event["data"]["object"]["id"] = f"cus_poll_{n}"
        events.append(event)
    return events


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    return sqlite_engine


def stored_ids(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return sorted(e.event_id for e in session.exec(select(InboxEvent)))


def test_events_are_fetched_page_by_page_oldest_first() -> None:
    stripe = FakeStripe(customers(250))

    with stripe.client() as client:
        events = events_since(client, 0)

    assert [e["id"] for e in events] == [f"evt_poll_{n}" for n in range(250)]
    assert len(stripe.calls) == 3  # 100 + 100 + 50


def test_polling_stores_each_event_once_and_moves_the_cursor(engine: Engine) -> None:
    stripe = FakeStripe(customers(250))
    handed_on: list[int] = []

    with stripe.client() as client:
        first = poll(engine, "default", STRIPE, client, handed_on.extend)
        again = poll(engine, "default", STRIPE, client, handed_on.extend)

    assert (first, again) == (250, 0)
    assert len(handed_on) == 250
    assert len(stored_ids(engine)) == 250
    with session_scope(engine) as session:
        cursor = session.get(Cursor, ("default", "stripe"))
    assert cursor is not None
    assert cursor.position == str(1_700_000_249)
    # the second poll asked from the cursor less the look-back window, not from the start
    assert stripe.calls[-1]["created[gte]"] == str(1_700_000_249 - 300)


def test_an_event_a_webhook_already_delivered_is_not_stored_twice(engine: Engine) -> None:
    events = customers(5)
    with session_scope(engine) as session:
        store_event(
            session,
            connection="default",
            source="stripe",
            event_id="evt_poll_2",
            body=json.dumps(events[2]).encode(),
        )

    with FakeStripe(events).client() as client:
        new = poll(engine, "default", STRIPE, client, lambda ids: None)

    assert new == 4
    assert stored_ids(engine) == [f"evt_poll_{n}" for n in range(5)]


def test_events_no_webhook_delivered_reach_planhat_by_polling_once(tmp_path: Path) -> None:
    system = Embedded(tmp_path)
    try:
        stripe = FakeStripe(customers(30))
        with stripe.client() as client:
            poll(system.runtime.engine, "default", STRIPE, client, system.dispatcher.ingest)
            poll(system.runtime.engine, "default", STRIPE, client, system.dispatcher.ingest)
        system.drain()
        with PlanhatClient("check", base_url=system.planhat_a.url) as planhat:
            companies = [c["externalId"] for c in planhat.list("companies")]
    finally:
        system.close()

    assert sorted(companies) == sorted(f"cus_poll_{n}" for n in range(30))
