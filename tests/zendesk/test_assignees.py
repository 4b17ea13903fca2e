"""The assignee ⇄ the Planhat ticket's owner (``zendesk.assignees=email``), matched by
e-mail: against the Planhat sandbox and the Zendesk stand-in, asserting the calls made."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from connectors.change import version_number
from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.source import PrepareContext, TargetRefused, WriteBack, WriteBackContext
from connectors.sources import source_options
from connectors.zendesk import SOURCE, api
from connectors.zendesk.assignees import ASSIGNEE_HINT, FindOwners
from tests.conftest import sandbox_stats
from tests.zendesk.stand_in import EMAIL, TOKEN, new_ticket, stand_in

LATER = version_number("2100-01-01T00:00:00Z")
ON = {"zendesk.assignees": "email"}


def planhat_user(client: PlanhatClient, email: str) -> str:
    user = client.create("users", {"email": email, "nickName": "csm", "firstName": "C",
                                   "lastName": "SM"})  # fmt: skip
    return str(user["_id"])


def agent(zendesk: httpx.Client, email: str, role: str = "agent") -> int:
    answer = zendesk.post("/api/v2/users.json", json={"user": {"email": email, "role": role}})
    return int(answer.json()["user"]["id"])


def planhat_context(client: PlanhatClient) -> PrepareContext:
    return PrepareContext(connection="default", planhat=client, take_budget=lambda: None,
                          memo={})  # fmt: skip


def write_context(url: str, http: httpx.Client, planhat: PrepareContext) -> WriteBackContext:
    return WriteBackContext(
        connection="default", api_base=url, secret=None, http=http, planhat=planhat,
        credentials={"subdomain": "acme", "email": EMAIL, "api_token": TOKEN},
        options=source_options(SOURCE, ON),
    )  # fmt: skip


def owner_change(ticket: int, owner: str | None) -> WriteBack:
    return WriteBack(model="tickets", key_field="sourceId", key=str(ticket), planhat_id="ph1",
                     fields={"custom": {"Owner": owner}}, version=LATER)  # fmt: skip


def users_read(sandbox: BackgroundSandbox) -> int:
    routes: dict[str, int] = sandbox_stats(sandbox)["by_route"]  # type: ignore[assignment]
    return sum(n for route, n in routes.items() if route.startswith("GET /users"))


def test_a_planhat_owner_change_assigns_the_zendesk_agent_with_that_users_email(
    sandbox: BackgroundSandbox, client: PlanhatClient
) -> None:
    owner = planhat_user(client, "Dana@Acme.example")
    planhat = planhat_context(client)
    with stand_in() as (server, zendesk), httpx.Client() as http:
        dana = agent(zendesk, "dana@acme.example")
        agent(zendesk, "dana@acme.example.org")  # a near miss the search also finds
        first, second = (new_ticket(zendesk, subject=s, status="open")["id"] for s in "ab")
        zendesk.post("/_sandbox/reset")
        context = write_context(server.url, http, planhat)

        SOURCE.write_back(context, owner_change(first, owner))
        SOURCE.write_back(context, owner_change(second, owner))  # both lookups cached

        assigned = [zendesk.get(f"/api/v2/tickets/{t}.json").json()["ticket"]["assignee_id"]
                    for t in (first, second)]  # fmt: skip
        routes = zendesk.get("/_sandbox/stats").json()["by_route"]
        audits = zendesk.get(f"/api/v2/tickets/{first}/audits.json").json()["audits"]
    assert assigned == [dana, dana]
    assert routes["GET /api/v2/users/search.json"] == 1
    assert routes["PUT /api/v2/tickets/{id:int}.json"] == 2
    assert users_read(sandbox) == 1
    assert audits[-1]["metadata"]["custom"] == {"sync_origin": "planhat-sync"}


def test_an_owner_added_to_planhat_after_the_directory_was_read_is_found_by_one_more_read(
    sandbox: BackgroundSandbox, client: PlanhatClient
) -> None:
    planhat = planhat_context(client)
    with stand_in() as (server, zendesk), httpx.Client() as http:
        ticket = new_ticket(zendesk, subject="a", status="open")["id"]
        context = write_context(server.url, http, planhat)
        SOURCE.write_back(context, owner_change(ticket, None))  # nothing to match: no read
        FindOwners()(planhat, [{ASSIGNEE_HINT: ""}], [{"sourceId": "1"}])  # the directory
        newcomer = planhat_user(client, "new@acme.example")
        hired = agent(zendesk, "new@acme.example")

        SOURCE.write_back(context, owner_change(ticket, newcomer))

        now = zendesk.get(f"/api/v2/tickets/{ticket}.json").json()["ticket"]
    assert now["assignee_id"] == hired
    assert users_read(sandbox) == 2


def test_an_owner_cleared_in_planhat_unassigns_the_ticket(client: PlanhatClient) -> None:
    with stand_in() as (server, zendesk), httpx.Client() as http:
        dana = agent(zendesk, "dana@acme.example")
        ticket = new_ticket(zendesk, subject="a", status="open", assignee_id=dana)["id"]
        context = write_context(server.url, http, planhat_context(client))
        SOURCE.write_back(context, owner_change(ticket, None))
        now = zendesk.get(f"/api/v2/tickets/{ticket}.json").json()["ticket"]
    assert now["assignee_id"] is None


@pytest.mark.parametrize("role", ["end-user", None])
def test_an_owner_with_no_zendesk_agent_is_refused_naming_the_owner_and_nothing_is_written(
    client: PlanhatClient, role: str | None
) -> None:
    owner = planhat_user(client, "lee@acme.example")
    with stand_in() as (server, zendesk), httpx.Client() as http:
        if role:  # the e-mail is a customer's in Zendesk, not an agent's
            agent(zendesk, "lee@acme.example", role=role)
        ticket = new_ticket(zendesk, subject="a", status="open")["id"]
        context = write_context(server.url, http, planhat_context(client))
        with pytest.raises(TargetRefused, match=owner) as refused:
            SOURCE.write_back(context, owner_change(ticket, owner))
        routes = zendesk.get("/_sandbox/stats").json()["by_route"]
    assert "lee@acme.example" not in str(refused.value)
    assert "PUT /api/v2/tickets/{id:int}.json" not in routes


def test_without_the_option_a_planhat_owner_change_costs_no_zendesk_call() -> None:
    with stand_in() as (server, zendesk), httpx.Client() as http:
        ticket = new_ticket(zendesk, subject="a", status="open")["id"]
        zendesk.post("/_sandbox/reset")
        context = WriteBackContext(
            connection="default", api_base=server.url, secret=None, http=http,
            credentials={"subdomain": "acme", "email": EMAIL, "api_token": TOKEN},
            options=source_options(SOURCE, {}),
        )  # fmt: skip
        SOURCE.write_back(context, owner_change(ticket, "someone"))
        stats = zendesk.get("/_sandbox/stats").json()
    assert stats["requests"] == 0


def mapped(zendesk: httpx.Client, ticket: dict[str, Any], options: dict[str, str]) -> Any:
    """The ticket as the source reads and maps it (REST, sideloaded)."""
    with api.client({"email": EMAIL, "api_token": TOKEN}, str(zendesk.base_url)) as http:
        read = api.read_ticket(http, ticket["id"])
    body = json.dumps(read).encode()
    [change] = SOURCE.changes(body, "e1", source_options(SOURCE, options))
    return change.fields


def test_the_assignee_becomes_the_owner_and_an_agent_without_a_planhat_user_is_reported(
    sandbox: BackgroundSandbox, client: PlanhatClient
) -> None:
    owner = planhat_user(client, "sam@acme.example")
    with stand_in() as (_, zendesk):
        sam, kim = agent(zendesk, "Sam@acme.example"), agent(zendesk, "kim@acme.example")
        requester = {"email": "buyer@customer.example"}
        tickets = [new_ticket(zendesk, subject=s, requester=requester, assignee_id=a)
                   for s, a in (("a", sam), ("b", kim), ("c", None))]  # fmt: skip
        fields = [mapped(zendesk, ticket, ON) for ticket in tickets]
        without = mapped(zendesk, tickets[0], {})
    records = [{"sourceId": str(t["id"]), "email": "buyer@customer.example"} for t in tickets]
    hook = FindOwners()
    context = planhat_context(client)

    with capture_logs() as logs:
        prepared = hook(context, fields, records)
    hook(context, fields, records)  # the directory is read once

    assert [r["custom"]["Owner"] for r in prepared.records] == [owner, None, None]
    assert prepared.settled == {i: {"custom": {"Owner": o}} for i, o in
                                enumerate([owner, None, None])}  # fmt: skip
    assert prepared.refused == prepared.waiting == {}  # the rest of each ticket still goes
    reported = [e for e in logs if e["event"] == "zendesk.assignee_without_planhat_user"]
    assert [e["ticket"] for e in reported] == [str(tickets[1]["id"])]
    assert "kim@acme.example" not in repr(reported)
    assert users_read(sandbox) == 1
    assert ASSIGNEE_HINT not in without
