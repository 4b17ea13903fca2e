"""What an event webhook's completion reads from Zendesk (the stand-in) and maps: the
ticket's status history and our own writes from its audits, deletions without a read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.planhat.sandbox.server import BackgroundServer
from connectors.source import NoBudget
from connectors.sources import source_options
from connectors.zendesk import SOURCE
from connectors.zendesk.write_back import ORIGIN
from tests import stand_in_http
from tests.zendesk.stand_in import EMAIL, TOKEN, new_ticket, stand_in

CREDENTIALS = {"email": EMAIL, "api_token": TOKEN}
OPTIONS = source_options(SOURCE, {"zendesk.status_map": "new=new,open=open,solved=resolved"})


@pytest.fixture
def zendesk() -> Iterator[tuple[BackgroundServer, httpx.Client]]:
    with stand_in() as served:
        yield served


def event(kind: str, ticket: dict[str, Any]) -> bytes:
    return json.dumps({"id": f"ev-{kind}", "type": f"zen:event-type:ticket.{kind}",
                       "subject": f"zen:ticket:{ticket['id']}", "time": "2026-03-01T00:00:00Z",
                       "detail": {"id": str(ticket["id"]),
                                  "updated_at": ticket["updated_at"]}}).encode()  # fmt: skip


def ui_edit(server: BackgroundServer, ticket_id: int, **fields: Any) -> dict[str, Any]:
    answer = stand_in_http.post(f"{server.url}/_sandbox/ui/tickets/{ticket_id}", json=fields)
    answer.raise_for_status()
    edited: dict[str, Any] = answer.json()["ticket"]
    return edited


def requests(client: httpx.Client) -> dict[str, int]:
    by_route: dict[str, int] = client.get("/_sandbox/stats").json()["by_route"]
    return by_route


def completed(server: BackgroundServer, body: bytes) -> list[Any]:
    detail = SOURCE.detail(CREDENTIALS, server.url, body)
    return SOURCE.changes(detail, "ev", OPTIONS)


def test_a_status_change_carries_the_status_history_through_the_status_map(
    zendesk: tuple[BackgroundServer, httpx.Client],
) -> None:
    server, client = zendesk
    ticket = new_ticket(client, subject="Printer", requester={"email": "ann@acme.example"})
    ui_edit(server, ticket["id"], status="open")
    solved = ui_edit(server, ticket["id"], status="solved")
    before = requests(client)
    [change] = completed(server, event("status_changed", solved))
    statuses = [(entry["status"], entry["time"]) for entry in change.fields["history"]]
    assert [status for status, _ in statuses] == ["new", "open", "resolved"]
    assert statuses[-1][1] == solved["updated_at"]
    assert statuses[0][1] == ticket["created_at"]
    assert change.fields["status"] == "resolved"
    assert not change.echo_of_ours
    after = requests(client)  # one read of the ticket, one of its audits
    assert sum(after.values()) - sum(before.values()) == 2
    assert after.get("GET /api/v2/tickets/{id:int}/audits.json", 0) == 1


def test_an_event_that_cannot_change_the_status_reads_no_audits_and_leaves_history(
    zendesk: tuple[BackgroundServer, httpx.Client],
) -> None:
    server, client = zendesk
    ticket = new_ticket(client, subject="Printer", requester={"email": "ann@acme.example"})
    tagged = ui_edit(server, ticket["id"], tags=["vip"])
    [change] = completed(server, event("tags_changed", tagged))
    assert "history" not in change.fields  # Planhat keeps the history last sent
    assert "GET /api/v2/tickets/{id:int}/audits.json" not in requests(client)


def test_our_own_write_coming_back_is_marked_as_our_echo(
    zendesk: tuple[BackgroundServer, httpx.Client],
) -> None:
    server, client = zendesk
    ticket = new_ticket(client, subject="Printer", requester={"email": "ann@acme.example"})
    # our write-back's PUT, stamped with our origin (kept in the audit's metadata.custom)
    written = client.put(f"/api/v2/tickets/{ticket['id']}.json",
                         json={"ticket": {"status": "open", "metadata": ORIGIN}})  # fmt: skip
    ours = written.json()["ticket"]
    assert written.json()["audit"]["metadata"]["custom"] == ORIGIN
    [change] = completed(server, event("status_changed", ours))
    assert change.echo_of_ours
    # an agent's change after ours: no longer our echo
    later = ui_edit(server, ticket["id"], priority="high")
    [change] = completed(server, event("priority_changed", later))
    assert not change.echo_of_ours


def test_a_deleted_ticket_event_is_a_deletion_without_a_call(
    zendesk: tuple[BackgroundServer, httpx.Client],
) -> None:
    server, client = zendesk
    ticket = new_ticket(client, subject="Printer", requester={"email": "ann@acme.example"})
    assert client.delete(f"/api/v2/tickets/{ticket['id']}.json").status_code == 204
    before = sum(requests(client).values())
    gone = {**ticket, "updated_at": "2026-03-02T00:00:00Z"}
    [change] = completed(server, event("soft_deleted", gone))
    assert (change.action, change.key) == ("deleted", str(ticket["id"]))
    assert sum(requests(client).values()) == before


def test_an_event_for_a_ticket_deleted_since_is_a_deletion_versioned_by_the_event(
    zendesk: tuple[BackgroundServer, httpx.Client],
) -> None:
    server, client = zendesk
    ticket = new_ticket(client, subject="Printer", requester={"email": "ann@acme.example"})
    client.delete(f"/api/v2/tickets/{ticket['id']}.json")
    late = json.dumps({"id": "ev-late", "type": "zen:event-type:ticket.status_changed",
                       "subject": f"zen:ticket:{ticket['id']}",
                       "time": "2026-03-03T00:00:00Z"}).encode()  # fmt: skip
    [change] = completed(server, late)
    assert change.action == "deleted"
    assert change.version > 0


def test_zendesks_429_while_completing_is_a_wait_not_an_error() -> None:
    # the account's requests a minute: 2 (the ticket's creation and the completion's read)
    with stand_in(rate_per_minute=2) as (server, client):
        ticket = new_ticket(client, subject="Printer", requester={"email": "ann@acme.example"})
        with pytest.raises(NoBudget) as audits_refused:  # the read went, its audits 429
            SOURCE.detail(CREDENTIALS, server.url, event("created", ticket))
        with pytest.raises(NoBudget) as read_refused:  # now the read itself
            SOURCE.detail(CREDENTIALS, server.url, event("status_changed", ticket))
        limited = requests(client)

    assert 0 < audits_refused.value.wait <= 60  # Zendesk's Retry-After, in seconds
    assert 0 < read_refused.value.wait <= 60
    assert limited == {"POST /api/v2/tickets.json": 1, "GET /api/v2/tickets/{id:int}.json": 2,
                       "GET /api/v2/tickets/{id:int}/audits.json": 1}  # fmt: skip
