"""The admin assignee ⇄ owner both ways on the embedded engine: the Intercom stand-in's
signed notifications into the receiver, the Planhat sandbox's ticket Automation back to
it, and a CSM handing a ticket to another teammate in Planhat."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.intercom.api import CONTACTS
from connectors.intercom.assignees import ADMINS
from connectors.intercom.write_back import STATES
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests.engine.intercom_two_way import TICKET_GET, TICKET_PUT, Calls, intercom_two_way

Start = Callable[[SandboxConfig], BackgroundSandbox]


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    ADMINS.clear()
    CONTACTS.clear()
    STATES.clear()


def test_an_assignee_becomes_the_owner_and_a_csms_new_owner_is_assigned_in_intercom(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path, options={"intercom.assignees": "email"}) as sync:
        owners = {name: sync.planhat.create("users", {"email": f"{name}@acme.example",
                  "nickName": name, "firstName": name, "lastName": "CSM"})["_id"]
                  for name in ("sam", "lee")}  # fmt: skip
        admins = {name: sync.intercom_store().add_admin(f"{name}@acme.example")["id"]
                  for name in ("sam", "lee")}  # fmt: skip
        made = sync.intercom_ticket(email="ann@acme.example", company="acme")
        sync.drain()
        sync.admin_edit(made["id"], admin_assignee_id=admins["sam"])  # assigned in the inbox
        sync.drain()
        assert sync.planhat_ticket(made["id"])["custom"]["Owner"] == owners["sam"]
        planhat_id = str(sync.planhat_ticket(made["id"])["_id"])
        sync.wait_past_intercom_stamp(made["id"])
        sync.reset_calls()

        sync.ui_edit(planhat_id, custom={"Owner": owners["lee"]})  # the CSM hands it over
        sync.drain()

        calls = sync.calls()
        now = sync.intercom_read(made["id"])
        stats = sync.intercom_stats()
        in_planhat = sync.planhat_ticket(made["id"])
        letters = sync.letters()
    assert now["admin_assignee_id"] == admins["lee"]
    assert stats["api_writes"] == 1  # the hand-over, once; its echo wrote nothing back
    assert stats["unchanged_writes"] == 0
    # the hand-over: its hint read in Planhat, the ticket read in Intercom, the PUT (the
    # admins and the Planhat users kept from the inbound); its notification completed
    # (the ticket read again) and dropped: nothing written to Planhat
    assert calls == Calls(intercom={TICKET_GET: 2, TICKET_PUT: 1}, planhat={"GET /tickets": 1})
    assert in_planhat["custom"]["Owner"] == owners["lee"]
    assert letters == []
