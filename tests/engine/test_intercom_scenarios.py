"""Issue 16's done-when scenarios (two-way-sync.md "Test scenarios", those that apply to
Intercom, 12 its own), Intercom ⇄ Planhat through the engine with both stand-ins, each
asserting exactly the calls the worker made on both sides, "no call" included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests.engine.intercom_two_way import (
    CONTACT_READ,
    ECHO_READ,
    STATES,
    TICKET_GET,
    TICKET_PUT,
    Calls,
    intercom_two_way,
    mirrored,
)

Start = Callable[[SandboxConfig], BackgroundSandbox]
MAPPED = {"intercom.status_map": "submitted=new,in_progress=open,"
          "waiting_on_customer=pending,resolved=solved"}  # fmt: skip


def test_1_a_new_intercom_ticket_creates_one_planhat_ticket(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        sync.reset_calls()
        ticket = sync.intercom_ticket(email="ann@acme.example", company="acme")
        sync.drain()
        calls = sync.calls()
        made = sync.planhat_ticket(ticket["id"])
        company = next(iter(sync.planhat.list("companies")))["_id"]
        letters = sync.letters()

    # the notification completed with the ticket and its contact (and the contact's
    # companies); the company found by its externalId, the ticket sent, its hint dropped
    assert calls == Calls(
        intercom={TICKET_GET: 1, **CONTACT_READ},
        planhat={"GET /companies": 1, "PUT /tickets": 1, **ECHO_READ},
    )
    assert {k: made[k] for k in ("source", "sourceId", "title", "description", "email",
                                 "status", "companyId")} == {
        "source": "intercom", "sourceId": ticket["id"], "title": "Printer jams",
        "description": "It jams", "email": "ann@acme.example", "status": "submitted",
        "companyId": company,
    }  # fmt: skip
    assert letters == []


def test_2_an_admin_state_change_becomes_the_mapped_planhat_status(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path, options=MAPPED) as sync:
        ticket, _ = mirrored(sync)
        sync.admin_edit(ticket, state="resolved")
        sync.drain()
        calls = sync.calls()
        status = sync.planhat_ticket(ticket)["status"]

    assert status == "solved"
    # resolving fires two notifications (state updated, closed): each completed by a
    # read (the contact cached), one change sent, the other the same (no write)
    assert calls == Calls(intercom={TICKET_GET: 2}, planhat={"PUT /tickets": 1, **ECHO_READ})
