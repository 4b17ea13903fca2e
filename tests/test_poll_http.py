"""Beat's poll over real HTTP: local fakes of Stripe's and Chargebee's events APIs.

Events present in the source's events API but never delivered by webhook reach Planhat,
once; a poll again (and events a webhook already delivered) adds nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox, BackgroundServer
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import migrate, session_scope
from state.inbox import store_event
from state.tables import Cursor, InboxEvent
from tests.conftest import drain_embedded
from tests.stripe.test_stripe import event_body
from tests.test_dev_flow import UNLIMITED
from worker.intake.poll import SourceApis
from worker.runtime.embedded import LocalDispatcher, embedded_runtime
from worker.runtime.jobs import Runtime, run_poll
from worker.runtime.settings import EngineSettings

CHARGEBEE = Path(__file__).resolve().parent / "fixtures" / "chargebee"


class FakeSources:
    """``GET /v1/events`` as Stripe answers it (newest first, ``created[gte]``,
    ``starting_after``) and ``GET /api/v2/events`` as Chargebee does (oldest first,
    ``occurred_at[after]``, ``offset``/``next_offset``); both check the API key."""

    def __init__(self, stripe: list[dict[str, Any]], chargebee: list[dict[str, Any]]) -> None:
        self.stripe = sorted(stripe, key=lambda e: (e["created"], e["id"]), reverse=True)
        self.chargebee = sorted(chargebee, key=lambda e: (e["occurred_at"], e["id"]))
        self.calls: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/v1/events", self.stripe_events),
                Route("/api/v2/events", self.chargebee_events),
            ]
        )

    async def stripe_events(self, request: Request) -> JSONResponse:
        self.calls.append(str(request.url))
        if request.headers.get("authorization") != "Bearer sk_test_poll":
            return JSONResponse({"error": {"message": "Invalid API Key"}}, status_code=401)
        params = request.query_params
        matching = [e for e in self.stripe if e["created"] >= int(params["created[gte]"])]
        if "starting_after" in params:
            ids = [e["id"] for e in matching]
            matching = matching[ids.index(params["starting_after"]) + 1 :]
        limit = int(params["limit"])
        page = {"object": "list", "data": matching[:limit], "has_more": len(matching) > limit}
        return JSONResponse(page)

    async def chargebee_events(self, request: Request) -> JSONResponse:
        self.calls.append(str(request.url))
        expected = "Basic " + base64.b64encode(b"cb_test_poll:").decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"message": "api_key invalid"}, status_code=401)
        params = request.query_params
        assert params["sort_by[asc]"] == "occurred_at"
        after = int(params["occurred_at[after]"])
        matching = [e for e in self.chargebee if e["occurred_at"] > after]
        start, limit = int(params.get("offset", 0)), int(params["limit"])
        page: dict[str, Any] = {"list": [{"event": e} for e in matching[start : start + limit]]}
        if start + limit < len(matching):
            page["next_offset"] = str(start + limit)
        return JSONResponse(page)


def stripe_customers(count: int) -> list[dict[str, Any]]:
    template = json.loads(event_body("customer.created"))
    events = []
    for n in range(count):
        event = json.loads(json.dumps(template))
        event["id"], event["created"] = f"evt_http_{n}", 1_700_000_000 + n
        event["data"]["object"] |= {"id": f"cus_http_{n}", "name": f"Stripe {n}"}
        events.append(event)
    return events


def chargebee_customers(count: int) -> list[dict[str, Any]]:
    template = json.loads((CHARGEBEE / "customer_created.json").read_text())
    events = []
    for n in range(count):
        event = json.loads(json.dumps(template))
        event["id"], event["occurred_at"] = f"ev_http_{n}", 1_700_000_000 + n
        customer = event["content"]["customer"]
        customer |= {"id": f"cb_http_{n}", "company": f"Chargebee {n}"}
        customer.pop("resource_version", None)
        events.append(event)
    return events


class Polled:
    def __init__(self, tmp_path: Path, fake: FakeSources) -> None:
        self.planhat = BackgroundSandbox(UNLIMITED).start()
        self.sources = BackgroundServer(fake.app).start()
        url = f"sqlite:///{tmp_path}/state.db"
        migrate(url)
        box = SecretBox(Fernet.generate_key().decode())
        tenant = Tenant(
            name="default",
            planhat_base_url=self.planhat.url,
            planhat_token="token",
            secrets={
                "stripe:api_key": "sk_test_poll",
                "chargebee:api_key": "cb_test_poll",
                "chargebee:site": "acme-test",  # overridden by SourceApis.chargebee below
            },
        )

        def connections(engine: Any) -> Connections:
            return Connections(engine, box=lambda: box, default=lambda: tenant)

        config = EngineSettings(flush_linger=0.05)
        self.runtime: Runtime
        self.dispatcher: LocalDispatcher
        self.runtime, self.dispatcher = embedded_runtime(url, connections, config)
        self.dispatcher.start()
        self.apis = SourceApis(stripe=self.sources.url, chargebee=self.sources.url)

    def drain(self, timeout: float = 30) -> None:
        drain_embedded(self.runtime.engine, self.dispatcher, timeout=timeout)

    def close(self) -> None:
        self.dispatcher.stop()
        self.sources.stop()
        self.planhat.stop()
        self.runtime.engine.dispose()


@pytest.fixture
def fake() -> FakeSources:
    return FakeSources(stripe_customers(150), chargebee_customers(120))


@pytest.fixture
def polled(tmp_path: Path, fake: FakeSources) -> Iterator[Polled]:
    system = Polled(tmp_path, fake)
    yield system
    system.close()


def test_events_no_webhook_delivered_arrive_by_polling_once(
    polled: Polled, fake: FakeSources
) -> None:
    # One Stripe event and one Chargebee event came by webhook already.
    delivered = []
    with session_scope(polled.runtime.engine) as session:
        for source, event in (("stripe", fake.stripe[0]), ("chargebee", fake.chargebee[0])):
            body = json.dumps(event).encode()
            delivered.append(
                store_event(session, connection="default", source=source,
                            event_id=event["id"], body=body, dispatched=True)
            )  # fmt: skip
    polled.dispatcher.ingest([i for i in delivered if i is not None])

    first = run_poll(polled.runtime, polled.apis)
    polled.drain()
    again = run_poll(polled.runtime, polled.apis)
    polled.drain()

    assert (first, again) == (150 - 1 + 120 - 1, 0)
    with session_scope(polled.runtime.engine) as session:
        stored = list(session.exec(select(InboxEvent.source)))
        cursors = {c.source: c.position for c in session.exec(select(Cursor))}
    assert (stored.count("stripe"), stored.count("chargebee")) == (150, 120)
    assert cursors == {"stripe": "1700000149", "chargebee": "1700000119"}
    # Stripe answered 2 pages then 2 again; Chargebee 2 pages, then 2 (the look-back).
    assert sum("/v1/events" in call for call in fake.calls) == 4
    assert sum("/api/v2/events" in call for call in fake.calls) == 4
    with PlanhatClient("check", base_url=polled.planhat.url) as planhat:
        names = sorted(company["name"] for company in planhat.list("companies"))
    expected = [f"Stripe {n}" for n in range(150)] + [f"Chargebee {n}" for n in range(120)]
    assert names == sorted(expected)  # every company once


def test_a_wrong_api_key_fails_the_poll_without_moving_the_cursor(
    polled: Polled, fake: FakeSources
) -> None:
    wrong = SourceApis(stripe=polled.sources.url + "/nowhere", chargebee=polled.sources.url)
    fake.chargebee = []  # Chargebee has nothing new; Stripe's URL is wrong

    assert run_poll(polled.runtime, wrong) == 0

    with session_scope(polled.runtime.engine) as session:
        cursors = {c.source: c.position for c in session.exec(select(Cursor))}
    assert "stripe" not in cursors  # failed: the next poll starts from the same place
    assert cursors.get("chargebee") == "0"
