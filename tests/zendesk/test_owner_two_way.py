"""The assignee ⇄ owner both ways on the embedded engine: the Zendesk stand-in's signed
event webhooks into the receiver, the Planhat sandbox's ticket automation back to it, and
a CSM handing a ticket to another agent in Planhat."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox, BackgroundServer
from connectors.zendesk.sandbox import ZendeskConfig, create_app
from tests.engine.two_way import TwoWay, two_way
from tests.zendesk.stand_in import EMAIL, TOKEN, WEBHOOK_SECRET, basic, wait_for
from worker.intake.poll import SourceApis

SECRETS = {"zendesk": WEBHOOK_SECRET, "zendesk:subdomain": "acme", "zendesk:email": EMAIL,
           "zendesk:api_token": TOKEN}  # fmt: skip


def settle(sync: TwoWay, stand_in: BackgroundServer) -> None:
    """Until the stand-in has delivered every event and the engine is still."""
    webhook = stand_in.app.state.sandbox.webhook  # type: ignore[attr-defined]
    for _ in range(2):  # our write back fires an event in turn
        wait_for(lambda: webhook.counts()["pending"] == 0)
        sync.drain()


def planhat_ticket(sync: TwoWay, source_id: int) -> dict[str, Any]:
    [found] = [t for t in sync.planhat.list("tickets") if t.get("sourceId") == str(source_id)]
    return found


def test_an_assignee_becomes_the_owner_and_a_csms_new_owner_is_assigned_in_zendesk(
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox], tmp_path: Path
) -> None:
    stand_in = BackgroundServer(create_app(ZendeskConfig(
        credentials={EMAIL: TOKEN}, export_lag_s=0, webhook_secret=WEBHOOK_SECRET)))  # fmt: skip
    options = {"zendesk.assignees": "email"}
    with (
        stand_in,
        two_way(
            start_sandbox,
            tmp_path,
            automations=("tickets",),
            options=options,
            secrets=SECRETS,
            apis=SourceApis(zendesk=stand_in.url),
        ) as sync,  # fmt: skip
        httpx.Client(base_url=stand_in.url, headers={"authorization": basic()}) as zendesk,
    ):
        hook = f"{sync.receiver.url}/webhooks/default/zendesk"
        stand_in.app.state.sandbox.webhook.url = hook  # type: ignore[attr-defined]
        sync.planhat.create("companies", {"name": "Customer", "domains": ["customer.example"]})
        owners = {name: sync.planhat.create("users", {"email": f"{name}@acme.example",
                  "nickName": name, "firstName": name, "lastName": "CSM"})["_id"]
                  for name in ("sam", "lee")}  # fmt: skip
        agents = {name: zendesk.post("/api/v2/users.json", json={"user": {
                  "email": f"{name}@acme.example", "role": "agent"}}).json()["user"]["id"]
                  for name in ("sam", "lee")}  # fmt: skip
        ticket = zendesk.post("/api/v2/tickets.json", json={"ticket": {
            "subject": "Login fails", "requester": {"email": "buyer@customer.example"},
            "assignee_id": agents["sam"], "status": "open"}}).json()["ticket"]  # fmt: skip
        settle(sync, stand_in)
        assert planhat_ticket(sync, ticket["id"])["custom"]["Owner"] == owners["sam"]
        zendesk.post("/_sandbox/reset")

        planhat_id = planhat_ticket(sync, ticket["id"])["_id"]
        sync.ui_edit("tickets", planhat_id, {"custom": {"Owner": owners["lee"]}})
        settle(sync, stand_in)

        now = zendesk.get(f"/api/v2/tickets/{ticket['id']}.json").json()["ticket"]
        stats = zendesk.get("/_sandbox/stats").json()
        in_planhat = planhat_ticket(sync, ticket["id"])
        letters = sync.letters()
    assert now["assignee_id"] == agents["lee"]
    assert stats["api_writes"] == 1  # the hand-over, once; its echo wrote nothing back
    assert stats["unchanged_writes"] == 0
    assert in_planhat["custom"]["Owner"] == owners["lee"]
    assert letters == []
