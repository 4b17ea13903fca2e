"""Issue 15's done-when scenarios 1-9 (two-way-sync.md "Test scenarios"), Zendesk ⇄
Planhat through the engine with both stand-ins, each asserting exactly the calls the worker
made on both sides, "no call" included: mapping, the three ping-pongs, the runaway guard,
closed → solved, 409s, owned fields. 10-16 and bad input: test_zendesk_faults.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests.engine.two_way import FAST
from tests.engine.zendesk_two_way import (
    AUDITS,
    ECHO_READ,
    EXPORT,
    TICKET_GET,
    TICKET_PUT,
    Calls,
    mirrored,
    zendesk_two_way,
)
from worker.runtime.settings import EngineSettings

Start = Callable[[SandboxConfig], BackgroundSandbox]
RESOLVED = {"zendesk.status_map": "new=new,open=open,pending=pending,hold=hold,solved=resolved"}


def test_1_a_new_zendesk_ticket_creates_one_planhat_ticket(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        org = sync.organization("acme")
        sync.reset_calls()
        ticket = sync.zendesk_ticket(organization_id=org, priority="high", tags=["b", "a"])
        sync.drain()
        calls = sync.calls()
        made = sync.planhat_ticket(ticket["id"])
        company = next(iter(sync.planhat.list("companies")))["_id"]
        letters = sync.letters()

    assert calls == Calls(
        # the created event completed with the ticket as REST gives it, and its audits
        # (the history, and whether the last change is ours)
        zendesk={TICKET_GET: 1, AUDITS: 1},
        planhat={"GET /companies": 1, "PUT /tickets": 1, **ECHO_READ},
    )
    assert {k: made[k] for k in ("source", "sourceId", "title", "email", "status", "severity",
                                 "tags", "companyId", "url")} == {
        "source": "zendesk", "sourceId": str(ticket["id"]), "title": "Printer jams",
        "email": "ann@acme.example", "status": "new", "severity": "high", "tags": ["a", "b"],
        "companyId": company, "url": f"https://acme.zendesk.com/agent/tickets/{ticket['id']}",
    }  # fmt: skip
    assert letters == []


def test_2_zendesk_solved_becomes_the_mapped_planhat_status(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path, options=RESOLVED) as sync:
        ticket, _ = mirrored(sync)
        sync.agent_edit(ticket, status="solved")
        sync.drain()
        calls = sync.calls()
        status = sync.planhat_ticket(ticket)["status"]

    assert status == "resolved"
    # the status_changed event read (GET) with its audits (the history, our echo or not)
    assert calls == Calls(
        zendesk={TICKET_GET: 1, AUDITS: 1}, planhat={"PUT /tickets": 1, **ECHO_READ}
    )


def test_2_a_status_change_appends_a_history_entry(start_sandbox: Start, tmp_path: Path) -> None:
    with zendesk_two_way(start_sandbox, tmp_path, options=RESOLVED) as sync:
        ticket, _ = mirrored(sync)
        sync.agent_edit(ticket, status="solved")
        sync.drain()
        history = sync.planhat_ticket(ticket).get("history") or []
        solved_at = sync.zendesk_read(ticket)["updated_at"]

    # one entry for the change, in Planhat's terms, at Zendesk's time of it
    assert [entry["status"] for entry in history].count("resolved") == 1
    assert history[-1]["status"] == "resolved"
    assert history[-1]["time"].startswith(solved_at[:19])


def test_3_ping_pong_a_our_planhat_write_fires_the_automation_and_costs_no_zendesk_call(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, _ = mirrored(sync)
        sync.agent_edit(ticket, status="pending", priority="urgent")
        sync.drain()
        calls = sync.calls()
        fired = sync.planhat_stats()["automations"]["fired"]
        hints = sync.events("planhat")

    # the agent's two changes are two events (status_changed, priority_changed), each
    # read once with its audits; the Automation fired for our write, its hint was read
    # once and dropped: no Zendesk call came of it
    assert calls == Calls(
        zendesk={TICKET_GET: 2, AUDITS: 2}, planhat={"PUT /tickets": 1, **ECHO_READ}
    )
    assert fired == 2  # the ticket's creation and this update
    assert {hint.status for hint in hints} == {"done"}


def test_4_ping_pong_b_our_zendesk_write_comes_back_and_costs_no_planhat_write(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.poll()  # the export's cursor is past the ticket's creation
        sync.drain()
        sync.reset_calls()
        sync.ui_edit(planhat_id, status="pending")  # a CSM in Planhat
        sync.drain()
        calls = sync.calls()
        hooks = sync.zendesk_stats()["webhook"]
        assert sync.poll() == 1  # the next export page holds our write too
        sync.drain()
        polled = sync.calls()
        now = sync.zendesk_read(ticket)
        audits = sync.zendesk_store().audits[ticket]

    assert now["status"] == "pending"
    assert audits[-1]["metadata"]["custom"] == {"sync_origin": "planhat-sync"}
    # the write-back's read and PUT; the write's own event came back (delivered), was
    # completed (GET) with its audits (the last one ours: an echo) and went nowhere
    assert hooks["delivered"] == 1
    assert calls == Calls(
        zendesk={TICKET_GET: 2, TICKET_PUT: 1, AUDITS: 1}, planhat={"GET /tickets": 1}
    )
    assert polled == Calls(
        zendesk={TICKET_GET: 2, TICKET_PUT: 1, AUDITS: 1, EXPORT: 1}, planhat={"GET /tickets": 1}
    )


def test_5_ping_pong_c_only_updated_at_and_generated_timestamp_moved_no_write(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, _ = mirrored(sync)
        sync.poll()  # the export's cursor is past the ticket's creation
        sync.drain()
        sync.reset_calls()
        # a trigger re-saves the ticket without our tag: a comment, no mapped field changes
        sync.agent_edit(ticket, comment={"body": "internal note", "public": False})
        sync.drain()
        assert sync.poll() == 1  # and the export sees its new updated_at
        sync.drain()
        commented = sync.calls()
        sync.reset_calls()
        # a system update: generated_timestamp alone moves, no event
        before = sync.zendesk_read(ticket)
        sync.zendesk_resave(ticket)
        after = sync.zendesk_read(ticket)
        assert sync.poll() == 0  # listed again, under an event id already held
        sync.drain()
        resaved = sync.calls()

    assert commented == Calls(zendesk={TICKET_GET: 1, EXPORT: 1}, planhat={})
    assert after["updated_at"] == before["updated_at"]
    assert after["generated_timestamp"] >= before["generated_timestamp"]
    assert resaved == Calls(zendesk={EXPORT: 1}, planhat={})


def test_6_runaway_guard_a_status_flip_flopping_between_the_sides_is_quarantined(
    start_sandbox: Start, tmp_path: Path
) -> None:
    config = EngineSettings(**{**FAST.model_dump(), "flap_bounces": 2, "flap_minutes": 10})
    with zendesk_two_way(start_sandbox, tmp_path, config=config) as sync:
        ticket, planhat_id = mirrored(sync)

        def bounce() -> None:
            """A CSM sets pending in Planhat; a Zendesk rule sets it open again."""
            sync.wait_past_zendesk_stamp(ticket)  # the CSM's change is the later one
            sync.ui_edit(planhat_id, status="pending")
            sync.drain()
            sync.agent_edit(ticket, status="open")
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
    assert (letter.model, letter.target) == ("tickets", "zendesk")
    assert letter.attempts == 3  # the turns counted: to Zendesk 1 and 3, to Planhat 2
    # each CSM change read (GET) and written to Zendesk (GET, PUT), its status_changed
    # event read back (GET, audits: ours); the agent's change in between read (GET,
    # audits) and written to Planhat (PUT), the Automation's hint read (GET); the second
    # agent change read (GET, audits) and dropped
    assert before == Calls(
        zendesk={TICKET_GET: 6, TICKET_PUT: 2, AUDITS: 4},
        planhat={"PUT /tickets": 1, "GET /tickets": 3},
    )
    # then the CSM's hint is read and dropped; the agent's event (GET, audits) goes nowhere
    assert after == Calls(
        zendesk={TICKET_GET: 6, TICKET_PUT: 2, AUDITS: 4},
        planhat={"PUT /tickets": 1, "GET /tickets": 4},
    )


def test_7_planhat_closed_is_written_to_zendesk_as_solved_never_closed(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.ui_edit(planhat_id, status="closed")
        sync.drain()
        calls = sync.calls()
        now = sync.zendesk_read(ticket)
        audits = sync.zendesk_store().audits[ticket]

    assert now["status"] == "solved"
    written = [e["value"] for a in audits for e in a["events"] if e.get("field_name") == "status"]
    assert written == ["new", "solved"]  # created new; never closed
    # Zendesk read and written; the write's own event read back with its audits (ours)
    assert calls.zendesk == {TICKET_GET: 2, TICKET_PUT: 1, AUDITS: 1}


def test_7_the_echo_of_solved_leaves_planhat_closed(start_sandbox: Start, tmp_path: Path) -> None:
    """Zendesk's "solved" is its spelling of Planhat's "closed" (the write-back's): neither
    our write's event, nor the export listing it, nor a later change of another field in
    Zendesk writes "solved" over the CSM's "closed"."""
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.poll()  # the export's cursor is past the ticket's creation
        sync.drain()
        sync.reset_calls()
        sync.ui_edit(planhat_id, status="closed")
        sync.drain()
        echoed = sync.calls()
        sync.reset_calls()
        assert sync.poll() == 1  # our write listed: "solved", without its audits
        sync.drain()
        polled = sync.calls()
        sync.reset_calls()
        sync.agent_edit(ticket, priority="urgent")  # later, another field, not ours
        sync.drain()
        later = sync.calls()
        planhat = sync.planhat_ticket(ticket)

    # the hint read; Zendesk read and written; our write's event read with its audits
    # (the last one ours: an echo, dropped)
    assert echoed == Calls(
        zendesk={TICKET_GET: 2, TICKET_PUT: 1, AUDITS: 1}, planhat={"GET /tickets": 1}
    )
    assert polled == Calls(zendesk={EXPORT: 1}, planhat={})  # Planhat holds it already
    # the agent's change read with its audits; the severity written, the hint read
    assert later == Calls(
        zendesk={TICKET_GET: 1, AUDITS: 1}, planhat={"PUT /tickets": 1, **ECHO_READ}
    )
    assert (planhat["status"], planhat["severity"]) == ("closed", "urgent")


def test_8_a_409_is_read_again_decided_per_field_and_retried_once(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        # an agent renames the ticket between our read and our write (later than the CSM)
        sync.zendesk_ahead(2)
        sync.agent_edit_before_next_put(ticket, subject="Printer jams again")
        sync.ui_edit(planhat_id, status="hold")
        sync.drain()
        calls = sync.calls()
        stats = sync.zendesk_stats()
        now = sync.zendesk_read(ticket)
        planhat = sync.planhat_ticket(ticket)

    assert stats["conflicts"] == 1
    assert (now["status"], now["subject"]) == ("hold", "Printer jams again")
    assert (planhat["status"], planhat["title"]) == ("hold", "Printer jams again")
    # read, PUT (409), read again, its audits (Zendesk changed since), PUT; then the
    # agent's rename (subject_changed: a read) and our write (status_changed: a read and
    # its audits, the last one ours) each come back as an event
    assert calls.zendesk == {TICKET_GET: 4, TICKET_PUT: 2, AUDITS: 2}
    assert calls.planhat == {"GET /tickets": 2, "PUT /tickets": 1}


def test_8_a_409_where_both_sides_changed_the_status_the_later_change_wins(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        # an agent sets the status between our read and our write, after the CSM did
        sync.zendesk_ahead(2)
        sync.agent_edit_before_next_put(ticket, status="pending")
        sync.ui_edit(planhat_id, status="hold")
        sync.drain()
        calls = sync.calls()
        now = sync.zendesk_read(ticket)
        planhat = sync.planhat_ticket(ticket)
        letters = sync.letters()

    assert (now["status"], planhat["status"]) == ("pending", "pending")
    assert letters == []
    # read, PUT (409), read again and its audits: Zendesk's status is later, nothing
    # written; the agent's change comes as an event, read with its audits, and is written
    # to Planhat
    assert calls.zendesk == {TICKET_GET: 3, TICKET_PUT: 1, AUDITS: 2}
    assert calls.planhat == {"GET /tickets": 2, "PUT /tickets": 1}


def test_9_an_owned_field_edited_in_planhat_is_not_propagated(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.ui_edit(planhat_id, title="Renamed by a CSM")
        sync.drain()
        calls = sync.calls()
        now = sync.zendesk_read(ticket)

    assert now["subject"] == "Printer jams"
    assert calls == Calls(zendesk={}, planhat={"GET /tickets": 1})
