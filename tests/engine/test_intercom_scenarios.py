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
    SEARCH,
    STATES,
    STATES_GET,
    TICKET_GET,
    TICKET_PUT,
    Calls,
    intercom_two_way,
    mirrored,
)
from tests.engine.two_way import FAST
from worker.runtime.settings import EngineSettings

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


def test_2_a_csm_status_is_written_as_its_categorys_state_and_closed_as_resolved(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path, options=MAPPED) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.ui_edit(planhat_id, status="pending")
        sync.drain()
        pending = (sync.calls(), sync.intercom_state(ticket))
        sync.reset_calls()
        sync.ui_edit(planhat_id, status="closed")  # not in the map: Planhat's "closed"
        sync.drain()
        closed = (sync.calls(), sync.intercom_state(ticket))
        status = sync.planhat_ticket(ticket)["status"]
        letters = sync.letters()

    # the hint read; the ticket read, the states read once, the PUT; the write's own
    # notification completed by a read and dropped as ours (no Planhat write)
    assert pending == (
        Calls(intercom={TICKET_GET: 2, STATES_GET: 1, TICKET_PUT: 1}, planhat=ECHO_READ),
        STATES["waiting_on_customer"],
    )
    # resolved, in its unarchived state: two notifications (state updated, closed)
    assert closed == (
        Calls(intercom={TICKET_GET: 3, TICKET_PUT: 1}, planhat=ECHO_READ),
        STATES["resolved"],
    )
    assert (status, letters) == ("closed", [])


def test_3_ping_pong_a_our_planhat_write_fires_the_automation_and_costs_no_intercom_call(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        ticket, _ = mirrored(sync)
        sync.admin_edit(ticket, state="in_progress")
        sync.drain()
        calls = sync.calls()
        fired = sync.planhat_stats()["automations"]["fired"]
        hints = sync.events("planhat")

    # the admin's change read once and written to Planhat; the Automation fired for our
    # write, its hint read once and dropped: no Intercom call came of it
    assert calls == Calls(intercom={TICKET_GET: 1}, planhat={"PUT /tickets": 1, **ECHO_READ})
    assert fired == 2  # the ticket's creation and this update
    assert {hint.status for hint in hints} == {"done"}


def test_3_ping_pong_b_our_intercom_write_comes_back_as_ours_and_costs_no_planhat_call(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.poll()  # the search's cursor is past the ticket's creation
        sync.drain()
        sync.reset_calls()
        sync.ui_edit(planhat_id, status="in_progress")  # a CSM in Planhat
        sync.drain()
        calls = sync.calls()
        hooks = sync.intercom_stats()["webhook"]
        sync.reset_calls()
        assert sync.poll() == 1  # the next search page holds our write too
        sync.drain()
        polled = sync.calls()
        part = sync.intercom_read(ticket)["ticket_parts"]["ticket_parts"][-1]

    assert (part["part_type"], part["app_package_code"]) == (
        "ticket_state_updated_by_admin", "planhat-sync",
    )  # fmt: skip
    # the write's own notification came back (delivered), was completed, and went nowhere
    assert hooks["delivered"] == 1
    assert calls == Calls(
        intercom={TICKET_GET: 2, STATES_GET: 1, TICKET_PUT: 1}, planhat={"GET /tickets": 1}
    )
    assert polled == Calls(intercom={SEARCH: 1}, planhat={})


def test_3_ping_pong_c_no_origin_and_only_updated_at_moved_the_hash_drops_it(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        ticket, _ = mirrored(sync)
        # an admin edits an attribute we do not mirror: no origin of ours, updated_at moves
        sync.admin_edit(ticket, ticket_attributes={"priority": "high"})
        sync.drain()
        edited = sync.calls()
        sync.reset_calls()
        assert sync.poll() == 1  # the search sees its new updated_at
        sync.drain()
        polled = sync.calls()

    assert edited == Calls(intercom={TICKET_GET: 1}, planhat={})
    assert polled == Calls(intercom={SEARCH: 1}, planhat={})


def test_12_an_admins_state_change_propagates_one_by_our_app_package_code_is_suppressed(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.admin_edit(ticket, state="in_progress")  # an admin in the inbox
        sync.drain()
        by_admin = (sync.calls(), sync.planhat_ticket(ticket)["status"])
        sync.reset_calls()
        # another app's API write (its own package code): not ours, it propagates
        sync.other_app_update(ticket, ticket_state_id=STATES["waiting_on_customer"])
        sync.drain()
        by_other_app = (sync.calls(), sync.planhat_ticket(ticket)["status"])
        sync.reset_calls()
        sync.wait_past_intercom_stamp(ticket)
        sync.ui_edit(planhat_id, status="resolved")  # written by our app, comes back
        sync.drain()
        ours = (sync.calls(), sync.planhat_ticket(ticket)["status"])
        events = sync.events("intercom")

    assert by_admin == (
        Calls(intercom={TICKET_GET: 1}, planhat={"PUT /tickets": 1, **ECHO_READ}),
        "in_progress",
    )
    assert by_other_app == (
        Calls(intercom={TICKET_GET: 1}, planhat={"PUT /tickets": 1, **ECHO_READ}),
        "waiting_on_customer",
    )
    # ours: the write (read, states, PUT), its two notifications read and dropped
    assert ours == (
        Calls(intercom={TICKET_GET: 3, STATES_GET: 1, TICKET_PUT: 1}, planhat=ECHO_READ),
        "resolved",
    )
    assert {event.status for event in events} == {"done"}


def test_12_our_write_coming_back_is_ours_by_its_app_package_code_not_by_its_hash(
    start_sandbox: Start, tmp_path: Path
) -> None:
    # Planhat "closed" is written as resolved, which maps back to "solved": the echo's
    # fields are not what we wrote (no hash match), and with Intercom's clock ahead it is
    # the later change. Only its origin (our app's parts) tells it is ours.
    with intercom_two_way(start_sandbox, tmp_path, options=MAPPED) as sync:
        sync.intercom_ahead(2)
        ticket, planhat_id = mirrored(sync)
        sync.ui_edit(planhat_id, status="closed")
        sync.drain()
        calls = sync.calls()
        now = (sync.intercom_state(ticket), sync.planhat_ticket(ticket)["status"])

    assert now == (STATES["resolved"], "closed")
    # the hint read; read, states, PUT; the two notifications of it read and dropped
    assert calls == Calls(intercom={TICKET_GET: 3, STATES_GET: 1, TICKET_PUT: 1}, planhat=ECHO_READ)


def test_6_runaway_guard_a_state_flip_flopping_between_the_sides_is_quarantined(
    start_sandbox: Start, tmp_path: Path
) -> None:
    config = EngineSettings(**{**FAST.model_dump(), "flap_bounces": 2, "flap_minutes": 10})
    with intercom_two_way(start_sandbox, tmp_path, config=config) as sync:
        sync.intercom_ahead(1)  # an admin's change is later than the CSM's before it
        ticket, planhat_id = mirrored(sync)

        def bounce() -> None:
            """A CSM sets in_progress in Planhat; an admin sets submitted again."""
            sync.wait_past_intercom_stamp(ticket)  # the CSM's change is the later one
            sync.ui_edit(planhat_id, status="in_progress")
            sync.drain()
            sync.admin_edit(ticket, state="submitted")
            sync.drain()

        for _ in range(2):  # turns 1-2, then 3 > 2
            bounce()
        letters = sync.letters()
        before = sync.calls()
        bounce()  # nothing moves any more, either way
        after = sync.calls()

    [letter] = letters
    assert letter.quarantine
    assert "flapping" in letter.reason
    assert (letter.model, letter.target) == ("tickets", "intercom")
    assert letter.attempts == 3  # the turns counted: to Intercom 1 and 3, to Planhat 2
    # each CSM change read (GET) and written to Intercom (GET, PUT), its notification read
    # back (GET); the admin's change in between read (GET) and written to Planhat (PUT),
    # the Automation's hint read (GET); the second admin change read and dropped
    assert before == Calls(
        intercom={TICKET_GET: 6, TICKET_PUT: 2, STATES_GET: 1},
        planhat={"PUT /tickets": 1, "GET /tickets": 3},
    )
    # then the CSM's hint is read and dropped; the admin's notification goes nowhere
    assert after == Calls(
        intercom={TICKET_GET: 6, TICKET_PUT: 2, STATES_GET: 1},
        planhat={"PUT /tickets": 1, "GET /tickets": 4},
    )


def test_8_conflict_an_intercom_state_change_later_than_the_csms_wins_on_both_sides(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.poll()  # the search's cursor is past the ticket's creation
        sync.drain()
        sync.reset_calls()
        # an admin resolves the ticket, stamped after the CSM's change that follows (its
        # notification lost: Intercom's word comes by the search)
        sync.intercom_ahead(3)
        sync.pause_webhook()
        sync.admin_edit(ticket, state="resolved")
        sync.ui_edit(planhat_id, status="waiting_on_customer")
        sync.drain()
        written = (sync.calls(), sync.intercom_state(ticket))
        assert sync.poll() == 1
        sync.drain()
        calls = sync.calls()
        planhat = sync.planhat_ticket(ticket)["status"]
        letters = sync.letters()

    # the hint read; the ticket read: its state changed after the CSM's change, no PUT
    assert written == (Calls(intercom={TICKET_GET: 1}, planhat=ECHO_READ), STATES["resolved"])
    # the search brings the admin's change (whole: no read), written to Planhat
    assert calls == Calls(
        intercom={TICKET_GET: 1, SEARCH: 1}, planhat={"GET /tickets": 2, "PUT /tickets": 1}
    )
    assert (planhat, letters) == ("resolved", [])


def test_9_an_owned_field_edited_in_planhat_is_not_propagated(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.ui_edit(planhat_id, title="Renamed by a CSM", description="Not jamming")
        sync.drain()
        calls = sync.calls()
        attributes = sync.intercom_read(ticket)["ticket_attributes"]

    assert (attributes["_default_title_"], attributes["_default_description_"]) == (
        "Printer jams", "It jams",
    )  # fmt: skip
    assert calls == Calls(intercom={}, planhat={"GET /tickets": 1})
