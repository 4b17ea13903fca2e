"""The admin assignee ⇄ the Planhat ticket's owner (``intercom.assignees=email``), matched
by e-mail: against the Planhat sandbox and the Intercom stand-in, asserting the calls."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from connectors.change import version_number
from connectors.intercom import SOURCE, api
from connectors.intercom.api import CONTACTS
from connectors.intercom.assignees import ADMINS, ASSIGNEE_HINT, FindOwners
from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.source import PrepareContext, TargetRefused, WriteBack, WriteBackContext
from connectors.sources import source_options
from tests.conftest import sandbox_stats
from tests.intercom.stand_in import TOKEN, new_contact, new_ticket, routes, stand_in

LATER = version_number("2100-01-01T00:00:00Z")
EARLIER = version_number("2000-01-01T00:00:00Z")
ON = {"intercom.assignees": "email"}
PUT, ADMINS_GET, ADMIN_GET = "PUT /tickets/{id}", "GET /admins", "GET /admins/{id}"
SYNC_ADMIN = "991267001"  # the stand-in's first admin (sam@helpdesk.example)


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    ADMINS.clear()
    CONTACTS.clear()


def planhat_user(client: PlanhatClient, email: str) -> str:
    user = client.create("users", {"email": email, "nickName": "csm", "firstName": "C",
                                   "lastName": "SM"})  # fmt: skip
    return str(user["_id"])


def admin(intercom: httpx.Client, email: str) -> str:
    """A teammate added in Intercom's app (the stand-in's control path)."""
    return str(intercom.post("/_sandbox/admins", json={"email": email}).json()["id"])


def planhat_context(client: PlanhatClient) -> PrepareContext:
    return PrepareContext(connection="default", planhat=client, take_budget=lambda: None,
                          memo={})  # fmt: skip


def write_context(
    url: str, http: httpx.Client, planhat: PrepareContext | None, **options: str
) -> WriteBackContext:
    return WriteBackContext(
        connection="default", api_base=url, secret=None, http=http, planhat=planhat,
        credentials={"access_token": TOKEN},
        options=source_options(SOURCE, {**ON, **{f"intercom.{k}": v for k, v in options.items()}}),
    )  # fmt: skip


def owner_change(ticket: Any, owner: str | None, version: int = LATER) -> WriteBack:
    return WriteBack(model="tickets", key_field="sourceId", key=str(ticket), planhat_id="ph1",
                     fields={"custom": {"Owner": owner}}, version=version)  # fmt: skip


def users_read(sandbox: BackgroundSandbox) -> int:
    by_route: dict[str, int] = sandbox_stats(sandbox)["by_route"]  # type: ignore[assignment]
    return sum(n for route, n in by_route.items() if route.startswith("GET /users"))


def assignee_of(intercom: httpx.Client, ticket: Any) -> str:
    return str(intercom.get(f"/tickets/{ticket}").json()["admin_assignee_id"])


def test_a_planhat_owner_change_assigns_the_intercom_admin_with_that_users_email(
    sandbox: BackgroundSandbox, client: PlanhatClient
) -> None:
    owner = planhat_user(client, "Dana@Acme.example")
    planhat = planhat_context(client)
    with stand_in() as (server, intercom), httpx.Client() as http:
        dana = admin(intercom, "dana@acme.example")
        admin(intercom, "dana@acme.example.org")  # a near miss
        contact = new_contact(intercom, "buyer@customer.example")
        first, second = (new_ticket(intercom, contact)["id"] for _ in "ab")
        intercom.post("/_sandbox/reset")
        context = write_context(server.url, http, planhat, admin_id=SYNC_ADMIN)

        SOURCE.write_back(context, owner_change(first, owner))
        SOURCE.write_back(context, owner_change(second, owner))  # both lookups cached

        calls = routes(intercom)
        assigned = [assignee_of(intercom, t) for t in (first, second)]
        part = intercom.get(f"/tickets/{first}").json()["ticket_parts"]["ticket_parts"][-1]
    assert assigned == [dana, dana]
    assert calls == {ADMINS_GET: 1, "GET /tickets/{id}": 2, PUT: 2}
    assert users_read(sandbox) == 1
    assert (part["part_type"], part["author"]["id"]) == ("assignment", SYNC_ADMIN)


def test_an_already_assigned_ticket_is_not_written_and_a_cleared_owner_unassigns(
    client: PlanhatClient,
) -> None:
    owner = planhat_user(client, "lee@acme.example")
    with stand_in() as (server, intercom), httpx.Client() as http:
        lee = admin(intercom, "lee@acme.example")
        ticket = new_ticket(intercom, new_contact(intercom, "b@customer.example"))["id"]
        intercom.put(f"/tickets/{ticket}", json={"assignee_id": lee})
        intercom.post("/_sandbox/reset")
        context = write_context(server.url, http, planhat_context(client))

        SOURCE.write_back(context, owner_change(ticket, owner))  # Intercom has it already
        already = routes(intercom)
        SOURCE.write_back(context, owner_change(ticket, None))  # no owner: unassigned
        now = assignee_of(intercom, ticket)
        calls = routes(intercom)
    assert PUT not in already
    assert now == "0"
    assert calls[PUT] == 1


def test_a_later_intercom_assignment_wins_over_an_older_planhat_owner(
    client: PlanhatClient,
) -> None:
    owner = planhat_user(client, "lee@acme.example")
    with stand_in() as (server, intercom), httpx.Client() as http:
        admin(intercom, "lee@acme.example")
        kim = admin(intercom, "kim@acme.example")
        ticket = new_ticket(intercom, new_contact(intercom, "b@customer.example"))["id"]
        intercom.put(f"/tickets/{ticket}", json={"assignee_id": kim})
        context = write_context(server.url, http, planhat_context(client))
        SOURCE.write_back(context, owner_change(ticket, owner, version=EARLIER))
        now = assignee_of(intercom, ticket)
    assert now == kim


def test_an_admin_added_after_the_list_was_read_is_found_by_one_more_read(
    client: PlanhatClient,
) -> None:
    planhat = planhat_context(client)
    with stand_in() as (server, intercom), httpx.Client() as http:
        ticket = new_ticket(intercom, new_contact(intercom, "b@customer.example"))["id"]
        context = write_context(server.url, http, planhat)
        sam = planhat_user(client, "sam@helpdesk.example")  # the stand-in's first admin
        SOURCE.write_back(context, owner_change(ticket, sam))  # the list read and kept
        newcomer = planhat_user(client, "new@acme.example")
        hired = admin(intercom, "new@acme.example")
        intercom.post("/_sandbox/reset")
        SOURCE.write_back(context, owner_change(ticket, newcomer))
        now = assignee_of(intercom, ticket)
        calls = routes(intercom)
    assert now == hired
    assert calls[ADMINS_GET] == 1  # the list kept had no such admin: read once more


def test_an_owner_with_no_intercom_admin_is_refused_naming_the_owner_and_nothing_is_written(
    client: PlanhatClient,
) -> None:
    owner = planhat_user(client, "lee@acme.example")
    with stand_in() as (server, intercom), httpx.Client() as http:
        ticket = new_ticket(intercom, new_contact(intercom, "lee@acme.example"))["id"]
        intercom.post("/_sandbox/reset")  # lee is a contact (a customer), not an admin
        context = write_context(server.url, http, planhat_context(client))
        with pytest.raises(TargetRefused, match=owner) as refused:
            SOURCE.write_back(context, owner_change(ticket, owner))
        calls = routes(intercom)
    assert "lee@acme.example" not in str(refused.value)
    assert PUT not in calls
    assert calls[ADMINS_GET] == 2  # read, and read again before refusing


def test_without_the_option_a_planhat_owner_change_costs_no_intercom_call() -> None:
    with stand_in() as (server, intercom), httpx.Client() as http:
        ticket = new_ticket(intercom, new_contact(intercom, "b@customer.example"))["id"]
        intercom.post("/_sandbox/reset")
        context = WriteBackContext(
            connection="default", api_base=server.url, secret=None, http=http,
            credentials={"access_token": TOKEN}, options=source_options(SOURCE, {}),
        )  # fmt: skip
        SOURCE.write_back(context, owner_change(ticket, "someone"))
        stats = intercom.get("/_sandbox/stats").json()
    assert stats["requests"] == 0


def test_a_status_and_an_owner_changed_together_go_in_one_put(client: PlanhatClient) -> None:
    owner = planhat_user(client, "lee@acme.example")
    with stand_in() as (server, intercom), httpx.Client() as http:
        lee = admin(intercom, "lee@acme.example")
        ticket = new_ticket(intercom, new_contact(intercom, "b@customer.example"))["id"]
        intercom.post("/_sandbox/reset")
        context = write_context(server.url, http, planhat_context(client))
        both = WriteBack(model="tickets", key_field="sourceId", key=str(ticket),
                         planhat_id="ph1", version=LATER,
                         fields={"status": "in_progress", "custom": {"Owner": owner}})  # fmt: skip
        SOURCE.write_back(context, both)
        now = intercom.get(f"/tickets/{ticket}").json()
        calls = routes(intercom)
    assert (now["admin_assignee_id"], now["ticket_state"]["category"]) == (lee, "in_progress")
    assert calls[PUT] == 1


def mapped(intercom: httpx.Client, ticket_id: str, options: dict[str, str]) -> Any:
    """The ticket as the source completes and maps it."""
    with api.client({"access_token": TOKEN}, str(intercom.base_url)) as http:
        read = api.read_ticket(http, ticket_id)
        assert read is not None
        body = json.dumps(api.complete(http, read)).encode()
    [change] = SOURCE.changes(body, "e1", source_options(SOURCE, options))
    return change.fields


def test_the_assignee_becomes_the_owner_and_an_admin_without_a_planhat_user_is_reported(
    sandbox: BackgroundSandbox, client: PlanhatClient
) -> None:
    owner = planhat_user(client, "sam@acme.example")
    with stand_in() as (_, intercom):
        sam, kim = admin(intercom, "Sam@acme.example"), admin(intercom, "kim@acme.example")
        contact = new_contact(intercom, "buyer@customer.example")
        tickets = [new_ticket(intercom, contact)["id"] for _ in range(3)]
        for ticket, assignee in zip(tickets, (sam, kim), strict=False):
            intercom.put(f"/tickets/{ticket}", json={"assignee_id": assignee})
        intercom.post("/_sandbox/reset")
        fields = [mapped(intercom, ticket, ON) for ticket in tickets]
        without = mapped(intercom, tickets[0], {})
        completing = routes(intercom)
        late = admin(intercom, "late@acme.example")  # a teammate added since the list
        intercom.put(f"/tickets/{tickets[2]}", json={"assignee_id": late})
        late_hint = mapped(intercom, tickets[2], ON)[ASSIGNEE_HINT]
        after = routes(intercom)
    records = [{"sourceId": t, "email": "buyer@customer.example"} for t in tickets]
    hook = FindOwners()
    context = planhat_context(client)

    with capture_logs() as logs:
        prepared = hook(context, fields, records)
    hook(context, fields, records)  # the directory is read once

    assert [f[ASSIGNEE_HINT] for f in fields] == ["sam@acme.example", "kim@acme.example", ""]
    assert [r["custom"]["Owner"] for r in prepared.records] == [owner, None, None]
    assert prepared.settled == {i: {"custom": {"Owner": o}} for i, o in
                                enumerate([owner, None, None])}  # fmt: skip
    assert prepared.refused == prepared.waiting == {}  # the rest of each ticket still goes
    reported = [e for e in logs if e["event"] == "intercom.assignee_without_planhat_user"]
    assert [e["ticket"] for e in reported] == [tickets[1]]
    assert "kim@acme.example" not in repr(reported)
    assert users_read(sandbox) == 1
    assert ASSIGNEE_HINT not in without
    assert completing[ADMINS_GET] == 1  # the workspace's admins, read once for all
    assert ADMIN_GET not in completing
    assert late_hint == "late@acme.example"
    assert (after[ADMIN_GET], after[ADMINS_GET]) == (1, 1)  # the newcomer alone read


def test_the_stand_in_lists_and_shows_admins_as_intercom_does() -> None:
    with stand_in() as (_, intercom):
        made = admin(intercom, "dana@acme.example")
        listed = intercom.get("/admins").json()
        shown = intercom.get(f"/admins/{made}").json()
        missing = intercom.get("/admins/1")
    assert listed["type"] == "admin.list"
    assert [a["email"] for a in listed["admins"]] == ["sam@helpdesk.example", "dana@acme.example"]
    assert {"type", "id", "name", "email", "job_title", "away_mode_enabled",
            "away_mode_reassign", "has_inbox_seat", "team_ids"} <= set(shown)  # fmt: skip
    assert (shown["type"], shown["id"]) == ("admin", made)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "not_found"
