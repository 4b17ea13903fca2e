"""Planhat → Zendesk: write_back against the stand-in, asserting the calls it made."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.change import version_number
from connectors.source import TargetRefused, WriteBack, WriteBackContext
from connectors.sources import source_options
from connectors.zendesk import SOURCE
from tests.zendesk.stand_in import EMAIL, TOKEN, new_ticket, stand_in

LATER = version_number("2100-01-01T00:00:00Z")  # Planhat changed it after anything here


def context(url: str, http: httpx.Client, **options: str) -> WriteBackContext:
    return WriteBackContext(
        connection="default",
        api_base=url,
        secret=None,
        http=http,
        credentials={"subdomain": "acme", "email": EMAIL, "api_token": TOKEN},
        options=source_options(SOURCE, {f"zendesk.{k}": v for k, v in options.items()}),
    )


def change(key: Any, version: int = LATER, **fields: Any) -> WriteBack:
    return WriteBack(
        model="tickets",
        key_field="sourceId",
        key=str(key),
        planhat_id="ph1",
        fields=fields,
        version=version,
    )


def routes(client: httpx.Client) -> dict[str, int]:
    stats = client.get("/_sandbox/stats").json()
    return {route: n for route, n in stats["by_route"].items() if not route.startswith("POST")}


def test_planhat_closed_is_written_as_solved_with_safe_update_and_our_origin() -> None:
    with stand_in() as (server, client), httpx.Client() as http:
        ticket = new_ticket(client, subject="x", status="open")
        SOURCE.write_back(context(server.url, http), change(ticket["id"], status="closed"))
        now = client.get(f"/api/v2/tickets/{ticket['id']}.json").json()["ticket"]
        audits = client.get(f"/api/v2/tickets/{ticket['id']}/audits.json").json()["audits"]
        calls = routes(client)
    assert now["status"] == "solved"
    assert audits[-1]["metadata"]["custom"] == {"sync_origin": "planhat-sync"}
    assert calls["PUT /api/v2/tickets/{id:int}.json"] == 1


def test_a_value_zendesk_already_has_costs_no_put() -> None:
    with stand_in() as (server, client), httpx.Client() as http:
        ticket = new_ticket(client, subject="x", status="open", priority="high")
        SOURCE.write_back(
            context(server.url, http), change(ticket["id"], status="open", severity="high")
        )
        calls = routes(client)
    assert "PUT /api/v2/tickets/{id:int}.json" not in calls


def test_a_later_zendesk_change_wins_over_an_older_planhat_one() -> None:
    with stand_in() as (server, client), httpx.Client() as http:
        ticket = new_ticket(client, subject="x", status="open")
        client.post(f"/_sandbox/ui/tickets/{ticket['id']}", json={"status": "pending"})
        older = version_number(ticket["created_at"]) - 1
        SOURCE.write_back(context(server.url, http), change(ticket["id"], older, status="solved"))
        now = client.get(f"/api/v2/tickets/{ticket['id']}.json").json()["ticket"]
        calls = routes(client)
    assert now["status"] == "pending"
    assert "PUT /api/v2/tickets/{id:int}.json" not in calls


def test_our_own_earlier_write_is_no_later_zendesk_change() -> None:
    """A write of an earlier Planhat change lands stamped after Planhat's next change (a
    CSM set pending, then hold): its audit is ours, so hold is still written."""
    with stand_in() as (server, client), httpx.Client() as http:
        ticket = new_ticket(client, subject="x", status="open")
        created = version_number(ticket["created_at"])
        SOURCE.write_back(
            context(server.url, http), change(ticket["id"], created, status="pending")
        )
        written = client.get(f"/api/v2/tickets/{ticket['id']}.json").json()["ticket"]
        client.post("/_sandbox/reset")
        # Planhat's hold is older than our pending's audit, newer than the ticket's creation
        assert version_number(written["updated_at"]) > created + 1
        SOURCE.write_back(
            context(server.url, http), change(ticket["id"], created + 1, status="hold")
        )
        now = client.get(f"/api/v2/tickets/{ticket['id']}.json").json()["ticket"]
        calls = routes(client)
    assert now["status"] == "hold"
    # read; Zendesk changed it after Planhat did: its audits (the last status change
    # ours); the PUT; then the test's own read
    assert calls == {
        "GET /api/v2/tickets/{id:int}.json": 2,
        "GET /api/v2/tickets/{id:int}/audits.json": 1,
        "PUT /api/v2/tickets/{id:int}.json": 1,
    }


@pytest.mark.parametrize(
    ("options", "planhat", "zendesk_gives"),
    [
        ({}, {"status": "closed"}, {"status": "solved"}),
        ({"status_map": "solved=resolved,open=open"}, {"status": "closed"}, {"status": "resolved"}),
        ({}, {"status": " New ", "severity": "HIGH"}, {"status": "new", "severity": "high"}),
        ({}, {"status": "archived", "severity": "someday"}, {"status": "archived",
                                                             "severity": "someday"}),
        ({}, {"title": "Printer"}, {"title": "Printer"}),
    ],
)  # fmt: skip
def test_read_back_is_what_zendesk_gives_back_for_what_was_written(
    options: dict[str, str], planhat: dict[str, Any], zendesk_gives: dict[str, Any]
) -> None:
    given = source_options(SOURCE, {f"zendesk.{k}": v for k, v in options.items()})
    gives = {name: SOURCE.read_back("tickets", name, value, given)
             for name, value in planhat.items()}  # fmt: skip
    assert gives == zendesk_gives


def test_a_409_is_read_again_and_retried_once() -> None:
    with stand_in() as (server, client):
        ticket = new_ticket(client, subject="x", status="open")
        edited = []

        def meanwhile(request: httpx.Request) -> None:  # an agent edits between read and PUT
            if request.method == "PUT" and not edited:
                edited.append(
                    client.post(f"/_sandbox/ui/tickets/{ticket['id']}", json={"subject": "renamed"})
                )

        with httpx.Client(event_hooks={"request": [meanwhile]}) as http:
            SOURCE.write_back(context(server.url, http), change(ticket["id"], status="hold"))
        now = client.get(f"/api/v2/tickets/{ticket['id']}.json").json()["ticket"]
        stats = client.get("/_sandbox/stats").json()
    assert (now["status"], now["subject"]) == ("hold", "renamed")
    assert stats["conflicts"] == 1
    assert stats["by_route"]["PUT /api/v2/tickets/{id:int}.json"] == 2


@pytest.mark.parametrize("status", ["archived"])
def test_an_unmappable_planhat_status_is_refused_naming_it(status: str) -> None:
    with stand_in() as (server, client), httpx.Client() as http:
        ticket = new_ticket(client, subject="x")
        with pytest.raises(TargetRefused, match="'archived'"):
            SOURCE.write_back(context(server.url, http), change(ticket["id"], status=status))
        calls = routes(client)
    assert calls == {}


def test_a_missing_ticket_or_bad_token_is_refused_with_zendesks_answer() -> None:
    with stand_in() as (server, _), httpx.Client() as http:
        with pytest.raises(TargetRefused, match=r"404: .*RecordNotFound"):
            SOURCE.write_back(context(server.url, http), change(999, status="open"))
        bad = context(server.url, http)
        bad = WriteBackContext(
            **{
                **{f: getattr(bad, f) for f in bad.__slots__},
                "credentials": {"email": EMAIL, "api_token": "wrong"},
            }
        )
        with pytest.raises(TargetRefused, match="401"):
            SOURCE.write_back(bad, change(1, status="open"))
