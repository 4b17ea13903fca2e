"""Planhat → Intercom: write_back against the stand-in, asserting the calls it made."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from connectors.change import version_number
from connectors.intercom import SOURCE
from connectors.intercom.api import reset_wait
from connectors.intercom.write_back import STATES
from connectors.source import (
    TargetRateLimited,
    TargetRefused,
    TargetUnavailable,
    WriteBack,
    WriteBackContext,
)
from connectors.sources import source_options
from tests.intercom.stand_in import TOKEN, new_contact, new_ticket, routes, stand_in

LATER = version_number("2100-01-01T00:00:00Z")  # Planhat changed it after anything here
PUT = "PUT /tickets/{id}"


def context(url: str, http: httpx.Client, token: str = TOKEN, **options: str) -> WriteBackContext:
    return WriteBackContext(
        connection="default", api_base=url, secret=None, http=http,
        credentials={"access_token": token},
        options=source_options(SOURCE, {f"intercom.{k}": v for k, v in options.items()}),
    )  # fmt: skip


def change(key: Any, version: int = LATER, **fields: Any) -> WriteBack:
    return WriteBack(model="tickets", key_field="sourceId", key=str(key), planhat_id="ph1",
                     fields=fields, version=version)  # fmt: skip


def state_of(client: httpx.Client, ticket: Any) -> Any:
    return client.get(f"/tickets/{ticket['id']}").json()["ticket_state"]


def test_a_status_goes_to_its_categorys_state_attributed_to_the_admin() -> None:
    with stand_in() as (server, client), httpx.Client() as http:
        ticket = new_ticket(client, new_contact(client, "a@acme.example"))
        STATES.clear()
        ctx = context(server.url, http, admin_id="991267001")
        SOURCE.write_back(ctx, change(ticket["id"], status="in_progress"))
        other = new_ticket(client, new_contact(client, "b@acme.example"))
        SOURCE.write_back(ctx, change(other["id"], status="closed"))  # unmapped closed: resolved
        state = state_of(client, ticket)
        part = client.get(f"/tickets/{ticket['id']}").json()["ticket_parts"]["ticket_parts"][-1]
        calls = routes(client)
    assert (state["id"], state["category"]) == ("4517894", "in_progress")
    assert calls["GET /ticket_states"] == 1  # the workspace's states, read once for both
    assert calls[PUT] == 2
    assert part["author"]["id"] == "991267001"
    assert part["app_package_code"] == "planhat-sync"


def test_the_state_map_names_a_state_by_id() -> None:
    with stand_in() as (server, client), httpx.Client() as http:
        ticket = new_ticket(client, new_contact(client, "a@acme.example"))
        ctx = context(server.url, http, state_map="escalated=4517897",
                      status_map="submitted=new,in_progress=open")  # fmt: skip
        SOURCE.write_back(ctx, change(ticket["id"], status="escalated"))
        SOURCE.write_back(ctx, change(ticket["id"], status="escalated"))  # already there
        calls = routes(client)
        state = state_of(client, ticket)
    assert state["id"] == "4517897"
    assert calls[PUT] == 1
    assert "GET /ticket_states" not in calls


def test_a_state_intercom_already_has_costs_no_put() -> None:
    with stand_in() as (server, client), httpx.Client() as http:
        ticket = new_ticket(client, new_contact(client, "a@acme.example"))
        SOURCE.write_back(context(server.url, http), change(ticket["id"], status="submitted"))
        calls = routes(client)
    assert PUT not in calls


def test_a_later_intercom_state_change_wins_over_an_older_planhat_one() -> None:
    with stand_in() as (server, client), httpx.Client() as http:
        ticket = new_ticket(client, new_contact(client, "a@acme.example"))
        client.post(f"/_sandbox/ui/tickets/{ticket['id']}", json={"ticket_state_id": "4517895"})
        older = ticket["created_at"] * 1_000_000 - 1
        SOURCE.write_back(context(server.url, http), change(ticket["id"], older, status="resolved"))
        state = state_of(client, ticket)
        calls = routes(client)
    assert state["category"] == "waiting_on_customer"
    assert PUT not in calls


def test_an_unmappable_status_is_refused_naming_it_without_a_call() -> None:
    with stand_in() as (server, client), httpx.Client() as http:
        with pytest.raises(TargetRefused, match="'archived'"):
            SOURCE.write_back(context(server.url, http), change("1", status="archived"))
        calls = routes(client)
    assert calls == {}


def test_refusals_carry_intercoms_answer_and_429_waits_until_the_reset() -> None:
    with stand_in(rate_per_window=2) as (server, client), httpx.Client() as http:
        with pytest.raises(TargetRefused, match=r"404: .*not_found"):
            SOURCE.write_back(context(server.url, http), change("999", status="resolved"))
        with pytest.raises(TargetRefused, match=r"401: .*unauthorized"):
            SOURCE.write_back(context(server.url, http, "wrong"), change("1", status="resolved"))
        client.get("/ticket_states")  # the window's last request
        with pytest.raises(TargetRateLimited) as limited:
            SOURCE.write_back(context(server.url, http), change("1", status="resolved"))
    assert 1.0 <= limited.value.retry_after <= 11.0


def test_no_answer_is_unavailable_and_the_reset_is_read_by_the_answers_clock() -> None:
    with httpx.Client() as http, pytest.raises(TargetUnavailable):
        SOURCE.write_back(context("http://127.0.0.1:9", http), change("1", status="resolved"))
    now = time.time()
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))
    answer = httpx.Response(429, headers={"X-RateLimit-Reset": str(int(now) + 7), "date": date})
    assert 6.0 <= reset_wait(answer) <= 8.0
    assert reset_wait(httpx.Response(429)) == 10.0
