"""The story tool on real Stripe events sent through the normal pipeline (``send_change``:
signed as Stripe signs, posted to the receiver, ingested and flushed by the embedded
engine into the Planhat sandbox): an event sent twice, and an older event after a newer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.server import MCPServer
from sqlmodel import func, select

from connectors.planhat.client import PlanhatClient
from state.db import session_scope
from state.tables import InboxEvent
from tests.mcp.tools import call
from tests.stripe.test_stripe import event_body
from tests.test_dev_flow import Embedded
from worker.mcp_server.context import ToolContext
from worker.mcp_server.server import build_server
from worker.mcp_server.sync_tools import STORY_NOTE

CUSTOMER = "cus_00000000000000"  # the published fixtures' customer and subscription item
ITEM = "si_00000000000000"
NEWER, OLDER = 1648320110, 1648320107  # customer.updated's and customer.created's "created"


@pytest.fixture
def system(tmp_path: Path) -> Iterator[Embedded]:
    embedded = Embedded(tmp_path)
    yield embedded
    embedded.close()


@pytest.fixture
def server(system: Embedded) -> MCPServer:
    ctx = ToolContext(
        engine=system.runtime.engine,
        connections=system.runtime.clients.connections,
        limiter=system.runtime.limiter,
        writes=True,
        receiver=system.http,  # the receiver app, as web serves it
    )
    return build_server(ctx)


def send(server: MCPServer, fixture: str, event_id: str) -> dict[str, Any]:
    event = json.loads(event_body(fixture))
    event["id"] = event_id  # the published fixtures all carry evt_000…
    result = call(server, "send_change", {"source": "stripe", "body": event, "dry_run": False})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def story(server: MCPServer, query: str) -> list[dict[str, Any]]:
    result = call(server, "get_story", {"query": query})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["note"] == STORY_NOTE
    stories: list[dict[str, Any]] = result.structured_content["stories"]
    return stories


def steps(told: dict[str, Any]) -> list[tuple[str, str]]:
    return [(step["stage"], step["text"]) for step in told["steps"]]


def test_the_story_tells_what_became_of_a_duplicate_and_of_a_stale_event(
    system: Embedded, server: MCPServer
) -> None:
    # given the newer customer event first, then the older one, then one event sent twice
    assert send(server, "customer.updated", "evt_newer")["results"][0]["status"] == 202
    system.drain()
    assert send(server, "customer.created", "evt_older")["results"][0]["status"] == 202
    system.drain()
    first = send(server, "customer.subscription.created", "evt_twice")
    second = send(server, "customer.subscription.created", "evt_twice")
    system.drain()

    with PlanhatClient("check", base_url=system.planhat_a.url) as planhat:
        company = planhat.get("companies", f"extid-{CUSTOMER}")["_id"]
        license_ = planhat.get("licenses", f"srcid-{ITEM}")["_id"]
    company_key = f"companies externalId={CUSTOMER}"

    # the event sent twice: stored once (the second delivery answered 200, not stored)
    assert (first["results"][0]["status"], second["results"][0]["status"]) == (202, 200)
    assert json.loads(second["results"][0]["answer"]) == {
        "status": "duplicate",
        "event_id": "evt_twice",
    }
    with session_scope(system.runtime.engine) as session:
        stored = session.exec(
            select(func.count()).select_from(InboxEvent).where(InboxEvent.event_id == "evt_twice")
        ).one()
    assert stored == 1
    [twice] = story(server, "evt_twice")
    assert twice["title"] == "event evt_twice (stripe → default)"
    assert steps(twice) == [
        ("received", "stored as inbox event 3"),
        ("mapped", f"1 change(s): licenses sourceId={ITEM}"),
        ("sent", f"licenses sourceId={ITEM}: sent; Planhat _id {license_}"),
    ]
    assert all(step["ok"] for step in twice["steps"])

    # the newer event: its company was sent, and Planhat has its version
    [newer] = story(server, "evt_newer")
    assert steps(newer) == [
        ("received", "stored as inbox event 1"),
        ("mapped", f"1 change(s): {company_key}"),
        ("sent", f"{company_key}: sent; Planhat _id {company}"),
    ]

    # the older event after it: stale, dropped by the diff, nothing sent for it
    [older] = story(server, "evt_older")
    assert steps(older) == [
        ("received", "stored as inbox event 2"),
        ("mapped", f"1 change(s): {company_key}"),
        (
            "sent",
            f"{company_key}: Planhat has a newer version ({NEWER} > {OLDER}): this change was "
            f"stale, or a later one carried it; Planhat _id {company}",
        ),
    ]
