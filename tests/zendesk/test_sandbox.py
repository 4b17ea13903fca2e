"""The Zendesk stand-in behaves as Zendesk documents (connectors/zendesk/sandbox)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from connectors.zendesk.verify import verify
from tests import stand_in_http
from tests.outbound import OutboundReceiver
from tests.zendesk.stand_in import WEBHOOK_SECRET, basic, new_ticket, stand_in, wait_for


@pytest.fixture
def hook() -> Iterator[OutboundReceiver]:
    with OutboundReceiver() as receiver:
        yield receiver


def test_a_wrong_api_token_is_401_and_the_right_one_works() -> None:
    with stand_in() as (server, client):
        wrong = stand_in_http.get(
            f"{server.url}/api/v2/tickets/1.json", headers={"authorization": basic(token="nope")}
        )
        missing = client.get("/api/v2/tickets/999.json")
    assert wrong.status_code == 401
    assert missing.status_code == 404


def test_safe_update_with_an_old_stamp_is_409_and_with_the_current_one_writes() -> None:
    with stand_in() as (server, client):
        ticket = new_ticket(client, subject="Printer", requester={"email": "a@acme.example"})
        first = client.put(
            f"/api/v2/tickets/{ticket['id']}.json",
            json={
                "ticket": {
                    "status": "open",
                    "safe_update": True,
                    "updated_stamp": ticket["updated_at"],
                    "metadata": {"sync_origin": "planhat-sync"},
                }
            },
        )
        stale = client.put(
            f"/api/v2/tickets/{ticket['id']}.json",
            json={
                "ticket": {
                    "status": "solved",
                    "safe_update": True,
                    "updated_stamp": ticket["updated_at"],
                }
            },
        )
        now = client.get(f"/api/v2/tickets/{ticket['id']}.json").json()["ticket"]
        audits = client.get(f"/api/v2/tickets/{ticket['id']}/audits.json").json()["audits"]
        stats = stand_in_http.get(f"{server.url}/_sandbox/stats").json()
    assert first.status_code == 200
    assert first.json()["audit"]["metadata"]["custom"] == {"sync_origin": "planhat-sync"}
    assert first.json()["ticket"]["updated_at"] > ticket["updated_at"]
    assert stale.status_code == 409
    assert now["status"] == "open"
    assert [a["events"][0]["type"] for a in audits] == ["Create", "Change"]
    assert stats["conflicts"] == 1
    assert stats["api_writes"] == 1


def test_a_closed_ticket_cannot_be_updated_and_a_bad_status_is_422() -> None:
    with stand_in() as (_, client):
        ticket = new_ticket(client, subject="x", status="closed")
        closed = client.put(
            f"/api/v2/tickets/{ticket['id']}.json", json={"ticket": {"status": "open"}}
        )
        other = new_ticket(client, subject="y")
        bad = client.put(
            f"/api/v2/tickets/{other['id']}.json", json={"ticket": {"status": "resolved"}}
        )
    assert closed.status_code == 422
    assert bad.status_code == 422


def test_the_cursor_export_pages_to_the_end_of_stream_with_sideloads() -> None:
    with stand_in(page_size=2) as (_, client):
        org = client.post(
            "/api/v2/organizations.json",
            json={"organization": {"name": "Acme", "external_id": "acme"}},
        )
        org_id = org.json()["organization"]["id"]
        made = [
            new_ticket(
                client,
                subject=f"T{n}",
                organization_id=org_id,
                requester={"email": f"u{n}@acme.example"},
            )
            for n in range(5)
        ]
        pages = []
        params: dict[str, str | int] = {
            "start_time": int(time.time()) - 60,
            "include": "users,organizations",
        }
        while True:
            page = client.get("/api/v2/incremental/tickets/cursor.json", params=params).json()
            pages.append(page)
            if page["end_of_stream"]:
                break
            params = {"cursor": page["after_cursor"], "include": "users,organizations"}
    seen = [t["id"] for page in pages for t in page["tickets"]]
    assert seen == [t["id"] for t in made]
    assert len(pages) == 3
    assert pages[0]["organizations"][0]["external_id"] == "acme"
    assert {u["email"] for u in pages[0]["users"]} == {"u0@acme.example", "u1@acme.example"}


def test_the_export_leaves_out_the_last_minute_and_answers_429_past_10_a_minute() -> None:
    with stand_in(export_lag_s=60) as (_, client):
        new_ticket(client, subject="just now")
        url = "/api/v2/incremental/tickets/cursor.json"
        answers = [client.get(url, params={"start_time": 0}) for _ in range(11)]
    assert answers[0].json()["tickets"] == []
    assert [a.status_code for a in answers[:10]] == [200] * 10
    assert answers[10].status_code == 429
    assert 1 <= int(answers[10].headers["retry-after"]) <= 60


def test_every_change_through_the_api_fires_a_signed_event(hook: OutboundReceiver) -> None:
    with stand_in(webhook_url=f"{hook.url}/zendesk") as (server, client):
        ticket = new_ticket(
            client, subject="Printer", priority="low", requester={"email": "a@acme.example"}
        )
        client.put(
            f"/api/v2/tickets/{ticket['id']}.json",
            json={"ticket": {"status": "pending", "priority": "high"}},
        )
        wait_for(lambda: len(hook.deliveries) == 3)
        stats = stand_in_http.get(f"{server.url}/_sandbox/stats").json()
    events = [d.json() for d in hook.deliveries]
    for delivery in hook.deliveries:
        assert verify(delivery.headers, delivery.body, WEBHOOK_SECRET, time.time())
    assert [e["type"].rpartition(".")[2] for e in events] == [
        "created",
        "status_changed",
        "priority_changed",
    ]
    assert events[1]["detail"]["id"] == str(ticket["id"])
    assert events[1]["detail"]["status"] == "PENDING"
    assert events[1]["event"] == {"current": "PENDING", "previous": "NEW"}
    assert events[2]["detail"]["priority"] == "HIGH"
    assert events[0]["subject"] == f"zen:ticket:{ticket['id']}"
    assert stats["webhook"]["delivered"] == 3


def test_show_many_answers_the_tickets_found_and_stats_count_each_users_calls() -> None:
    with stand_in(first_id=500) as (_server, client):
        one = new_ticket(client, subject="a", requester={"email": "a@acme.example"})
        two = new_ticket(client, subject="b", requester={"email": "b@acme.example"})
        many = client.get(
            "/api/v2/tickets/show_many.json", params={"ids": f"{two['id']},1,{one['id']}"}
        )
        too_many = client.get("/api/v2/tickets/show_many.json",
                              params={"ids": ",".join(map(str, range(1, 102)))})  # fmt: skip
        stats = client.get("/_sandbox/stats").json()
    assert one["id"] >= 500
    assert [t["id"] for t in many.json()["tickets"]] == [two["id"], one["id"]]
    assert too_many.status_code == 422
    assert stats["by_user"] == {"sync@acme.example": {
        "POST /api/v2/tickets.json": 2, "GET /api/v2/tickets/show_many.json": 2}}  # fmt: skip
