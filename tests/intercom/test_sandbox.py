"""The Intercom stand-in behaves as Intercom documents (connectors/intercom/sandbox)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from connectors.intercom.verify import verify
from tests import stand_in_http
from tests.intercom.stand_in import (
    CLIENT_SECRET,
    TOKEN,
    new_contact,
    new_ticket,
    routes,
    stand_in,
    wait_for,
)
from tests.outbound import OutboundReceiver


@pytest.fixture
def hook() -> Iterator[OutboundReceiver]:
    with OutboundReceiver() as receiver:
        yield receiver


def test_a_wrong_token_is_401_and_answers_carry_the_rate_limit_headers() -> None:
    with stand_in() as (server, client):
        wrong = stand_in_http.get(f"{server.url}/ticket_states",
                          headers={"authorization": "Bearer nope"})  # fmt: skip
        states = client.get("/ticket_states")
        missing = client.get("/tickets/404")
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["code"] == "unauthorized"
    assert "x-ratelimit-limit" not in wrong.headers
    assert states.status_code == 200
    assert {s["category"] for s in states.json()["data"]} == {
        "submitted", "in_progress", "waiting_on_customer", "resolved"}  # fmt: skip
    assert int(states.headers["x-ratelimit-remaining"]) < int(states.headers["x-ratelimit-limit"])
    assert missing.status_code == 404


def test_past_the_window_it_is_429_with_the_documented_headers() -> None:
    with stand_in(rate_per_window=3) as (_, client):
        answers = [client.get("/ticket_states") for _ in range(4)]
        stats = client.get("/_sandbox/stats").json()
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    late = answers[3]
    assert late.json()["errors"][0]["code"] == "rate_limit_exceeded"
    assert late.headers["x-ratelimit-limit"] == "3"
    assert late.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(late.headers["x-ratelimit-reset"]) - time.time() <= 11
    assert stats["rate_limited"] == 1


def test_a_ticket_is_shaped_as_rest_2_14_gives_it() -> None:
    with stand_in() as (_, client):
        contact = new_contact(client, "ann@acme.example", company="acme")
        ticket = new_ticket(client, contact)
        read = client.get(f"/tickets/{ticket['id']}").json()
        person = client.get(f"/contacts/{contact}").json()
        companies = client.get(f"/contacts/{contact}/companies").json()
    assert read["ticket_state"]["category"] == "submitted"
    assert read["id"] != read["ticket_id"]
    assert read["contacts"]["contacts"] == [{"type": "contact", "id": contact,
                                             "external_id": None}]  # fmt: skip
    assert read["ticket_attributes"]["_default_title_"] == "Printer"
    assert person["email"] == "ann@acme.example"
    assert [c["company_id"] for c in companies["data"]] == ["acme"]


def test_search_filters_with_its_operators_and_pages_with_starting_after() -> None:
    with stand_in() as (_, client):
        contact = new_contact(client, "a@acme.example")
        made = [new_ticket(client, contact, title=f"T{n}") for n in range(5)]
        since = made[0]["updated_at"]
        pages, body = [], {"query": {"field": "updated_at", "operator": ">", "value": since},
                           "pagination": {"per_page": 2}}  # fmt: skip
        while True:
            page = client.post("/tickets/search", json=body).json()
            pages.append(page)
            after = page["pages"].get("next", {}).get("starting_after")
            if not after:
                break
            body["pagination"] = {"per_page": 2, "starting_after": after}
        either = [{"field": "title", "operator": "IN", "value": ["T1", "T3"]},
                  {"field": "title", "operator": "$", "value": "4"}]  # fmt: skip
        grouped = client.post("/tickets/search", json={"query": {"operator": "AND", "value": [
            {"field": "title", "operator": "^", "value": "t"},
            {"operator": "OR", "value": either},
        ]}}).json()  # fmt: skip
        too_deep = client.post("/tickets/search", json={"query": {"operator": "AND", "value": [
            {"operator": "OR", "value": [{"operator": "AND", "value": [
                {"field": "id", "operator": "=", "value": "1"}]}]}]}})  # fmt: skip
        bad_field = client.post("/tickets/search", json={"query": {"field": "colour",
                                "operator": "=", "value": "red"}})  # fmt: skip
    assert [t["id"] for p in pages for t in p["tickets"]] == [t["id"] for t in made]
    assert [len(p["tickets"]) for p in pages] == [2, 2, 1]
    assert pages[0]["total_count"] == 5
    assert sorted(t["ticket_attributes"]["_default_title_"] for t in grouped["tickets"]) == [
        "T1", "T3", "T4"]  # fmt: skip
    assert too_deep.status_code == bad_field.status_code == 400


def test_every_change_fires_a_signed_notification_api_parts_carry_the_app(
    hook: OutboundReceiver,
) -> None:
    with stand_in(webhook_url=f"{hook.url}/intercom") as (_, client):
        contact = new_contact(client, "a@acme.example")
        ticket = new_ticket(client, contact)
        client.put(f"/tickets/{ticket['id']}", json={"ticket_state_id": "4517896"})
        client.put(f"/tickets/{ticket['id']}", json={"ticket_state_id": "4517896"})  # no change
        client.post(f"/_sandbox/ui/tickets/{ticket['id']}", json={"ticket_state_id": "4517894"})
        wait_for(lambda: len(hook.deliveries) == 4)
        stats = client.get("/_sandbox/stats").json()
        parts = client.get(f"/tickets/{ticket['id']}").json()["ticket_parts"]["ticket_parts"]
    events = [d.json() for d in hook.deliveries]
    for delivery in hook.deliveries:
        assert verify(delivery.headers, delivery.body, CLIENT_SECRET, time.time())
    assert [e["topic"] for e in events] == [
        "ticket.created", "ticket.state.updated", "ticket.closed", "ticket.state.updated",
    ]  # fmt: skip
    assert events[1]["type"] == "notification_event"
    assert events[1]["id"].startswith("notif_")
    assert events[1]["data"]["item"]["ticket_state"]["category"] == "resolved"
    assert (stats["api_writes"], stats["unchanged_writes"], stats["ui_edits"]) == (1, 1, 1)
    by_api, by_admin = parts[1], parts[2]
    assert by_api["app_package_code"] == "planhat-sync"
    assert "app_package_code" not in by_admin
    assert by_admin["author"]["type"] == "admin"


def test_an_archived_or_unknown_state_is_refused_and_reset_clears_the_counters() -> None:
    with stand_in() as (_, client):
        contact = new_contact(client, "a@acme.example")
        ticket = new_ticket(client, contact)
        archived = client.put(f"/tickets/{ticket['id']}", json={"ticket_state_id": "4517890"})
        unknown = client.put(f"/tickets/{ticket['id']}", json={"ticket_state_id": "1"})
        before = routes(client)
        client.post("/_sandbox/reset")
        after = routes(client)
    assert archived.status_code == unknown.status_code == 422
    assert before["PUT /tickets/{id}"] == 2
    assert after == {}


def test_another_apps_token_writes_as_that_app_and_its_calls_count_apart() -> None:
    with stand_in(
        tokens=frozenset({TOKEN, "other-token"}), app_codes={"other-token": "other-app"}
    ) as (_, client):
        contact = new_contact(client, "a@acme.example")
        ticket = new_ticket(client, contact)
        other = {"authorization": "Bearer other-token", "intercom-version": "2.14"}
        url = f"/tickets/{ticket['id']}"
        client.put(url, json={"ticket_state_id": "4517894"}, headers=other).raise_for_status()
        parts = client.get(url).json()["ticket_parts"]["ticket_parts"]
        stats = client.get("/_sandbox/stats").json()
    assert [p.get("app_package_code") for p in parts] == ["planhat-sync", "other-app"]
    assert stats["by_app"] == {
        "planhat-sync": {"POST /contacts": 1, "POST /tickets": 1, "GET /tickets/{id}": 1},
        "other-app": {"PUT /tickets/{id}": 1},
    }
