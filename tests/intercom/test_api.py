"""Reading Intercom: the search feed (also the backfill) and completing a notification,
against the stand-in, asserting the calls made."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.intercom import SOURCE, api
from connectors.intercom.mapping import COMPANY_HINT
from connectors.source import NoBudget
from connectors.sources import source_options
from tests.intercom.stand_in import TOKEN, new_contact, new_ticket, routes, stand_in

CREDENTIALS = {"access_token": TOKEN}


def test_regions_and_the_pinned_version() -> None:
    assert api.base_url({}, None) == "https://api.intercom.io"
    assert api.base_url({"region": "eu"}, None) == "https://api.eu.intercom.io"
    assert api.base_url({"region": "eu"}, "AU") == "https://api.au.intercom.io"
    assert api.base_url({}, "http://127.0.0.1:9/") == "http://127.0.0.1:9"
    with api.client(CREDENTIALS, None) as http:
        assert http.headers["intercom-version"] == "2.14"
        assert http.headers["authorization"] == f"Bearer {TOKEN}"
    assert list(SOURCE.feeds({}, {}, None)) == []  # no token: no feed


def test_the_feed_pages_every_ticket_since_oldest_first_each_version_once() -> None:
    with stand_in() as (server, client):
        contact = new_contact(client, "a@acme.example")
        made = [new_ticket(client, contact, title=f"T{n}") for n in range(5)]
        # the first ticket changes last: the search gives it first, the feed last
        client.post(f"/_sandbox/ui/tickets/{made[0]['id']}", json={"ticket_state_id": "4517894"})
        [(feed, http)] = list(SOURCE.feeds(CREDENTIALS, {}, server.url))
        with http:
            items = api.tickets_since(http, 0, per_page=2)
            calls = routes(client)
            backfill = feed.fetch(http, 0)
    ids = [item["ticket"]["id"] for item in items]
    assert ids == [t["id"] for t in made[1:]] + [made[0]["id"]]
    assert [feed.position(i) for i in items] == sorted(feed.position(i) for i in items)
    assert feed.event_id(items[-1]) == f"ticket-{made[0]['id']}@{items[-1]['ticket']['updated_at']}"
    assert calls["POST /tickets/search"] == 3  # 2 + 2 + 1
    assert len(backfill) == 5
    assert feed.lookback == 120


def test_the_feed_asks_from_the_cursor_with_search_greater_or_equal() -> None:
    with stand_in() as (server, client):
        contact = new_contact(client, "a@acme.example")
        old = new_ticket(client, contact, title="old")
        client.post(f"/_sandbox/ui/tickets/{old['id']}", json={"ticket_state_id": "4517894"})
        changed = client.get(f"/tickets/{old['id']}").json()
        with api.client(CREDENTIALS, server.url) as http:
            items = api.tickets_since(http, changed["updated_at"])
            none = api.tickets_since(http, changed["updated_at"] + 1)
    assert [i["ticket"]["id"] for i in items] == [old["id"]]
    assert none == []


def test_detail_completes_a_notification_with_the_ticket_its_contact_and_companies() -> None:
    with stand_in() as (server, client):
        contact = new_contact(client, "Ann@Acme.example", company="acme")
        ticket = new_ticket(client, contact)
        thin = {"type": "notification_event", "id": "notif_1", "topic": "ticket.created",
                "data": {"type": "notification_event_data", "item": ticket}}  # fmt: skip
        api.CONTACTS.clear()
        body = SOURCE.detail(CREDENTIALS, server.url, json.dumps(thin).encode())
        again = SOURCE.detail(CREDENTIALS, server.url, json.dumps(thin).encode())
        same = SOURCE.detail(CREDENTIALS, server.url, body)
        calls = routes(client)
    document: Any = json.loads(body)
    assert document["contact"] == {"id": contact, "email": "Ann@Acme.example"}
    assert [c["company_id"] for c in document["companies"]] == ["acme"]
    assert same == body  # completed already: no call
    assert calls["GET /tickets/{id}"] == 2
    assert calls["GET /contacts/{id}"] == 1  # the contact is read once, then kept
    assert calls["GET /contacts/{id}/companies"] == 1
    assert json.loads(again)["ticket"] == document["ticket"]
    [change] = SOURCE.changes(body, "notif_1", source_options(SOURCE, {}))
    assert change.fields["email"] == "ann@acme.example"
    assert change.fields[COMPANY_HINT] == ["acme"]


def test_a_ticket_gone_is_a_deletion_and_a_contact_without_email_a_dead_letter() -> None:
    with stand_in() as (server, client):
        nobody = new_contact(client, None)
        ticket = new_ticket(client, nobody)
        gone = {"type": "notification_event", "id": "n", "topic": "ticket.state.updated",
                "data": {"item": {"type": "ticket", "id": "999"}}}  # fmt: skip
        deleted = SOURCE.detail(CREDENTIALS, server.url, json.dumps(gone).encode())
        item = json.dumps({"ticket": ticket}).encode()
        no_email = SOURCE.detail(CREDENTIALS, server.url, item)
    assert json.loads(deleted) == {"ticket": {"id": "999", "deleted": True}}
    assert json.loads(no_email)["contact"] == {"id": nobody, "email": None}


def test_a_429_while_completing_is_a_wait_until_the_reset_not_an_error() -> None:
    with stand_in(rate_per_window=1) as (server, client):
        client.get("/ticket_states")  # the window's one request
        thin = {"type": "notification_event", "id": "n", "topic": "ticket.created",
                "data": {"item": {"type": "ticket", "id": "1"}}}  # fmt: skip
        with pytest.raises(NoBudget) as raised:
            SOURCE.detail(CREDENTIALS, server.url, json.dumps(thin).encode())
    assert 1.0 <= raised.value.wait <= 11.0  # X-RateLimit-Reset: the window's end
