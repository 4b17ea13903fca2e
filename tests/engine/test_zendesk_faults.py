"""Issue 15's done-when scenarios 10-16 (two-way-sync.md "Test scenarios"; 12 is
Intercom's, not here) and its bad-input lines, Zendesk ⇄ Planhat through the engine with
both stand-ins, each asserting exactly the calls the worker made on both sides: dead
letters, a failing export page, deletions, normalisation, 429s, a missed webhook, forged
signatures, Zendesk refusing a write-back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.zendesk.verify import signed_headers
from state.tables import Cursor
from tests import stand_in_http
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
from tests.zendesk.stand_in import WEBHOOK_SECRET, wait_for

Start = Callable[[SandboxConfig], BackgroundSandbox]


def test_10_a_requester_without_an_email_is_a_dead_letter_saying_so(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        sync.reset_calls()
        ticket = sync.zendesk_ticket(requester=None)
        sync.drain()
        calls = sync.calls()
        letters = sync.letters()
        events = sync.events("zendesk")

    [letter] = letters
    assert f"zendesk ticket {ticket['id']}: its requester has no e-mail" in letter.reason
    assert [event.status for event in events] == ["failed"]  # kept, marked
    # the created event read with its audits (before mapping); nothing sent to Planhat
    assert calls == Calls(zendesk={TICKET_GET: 1, AUDITS: 1}, planhat={})


def test_11_no_company_matches_a_dead_letter_names_the_domain_and_the_fix(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        sync.reset_calls()
        ticket = sync.zendesk_ticket(requester="bob@elsewhere.example")
        sync.drain()
        calls = sync.calls()
        letters = sync.letters()

    [letter] = letters
    assert letter.key_value == str(ticket["id"])
    assert "no Planhat company has the domain elsewhere.example" in letter.reason
    assert "add the domain to its company in Planhat" in letter.reason
    assert calls.zendesk == {TICKET_GET: 1, AUDITS: 1}  # the created event, its audits
    assert set(calls.planhat) == {"GET /companies"}  # no ticket sent


def test_13_a_failing_export_page_leaves_the_cursor_and_the_replay_is_idempotent(
    start_sandbox: Start, tmp_path: Path
) -> None:
    zendesk = {"page_size": 2}
    with zendesk_two_way(start_sandbox, tmp_path, zendesk_config=zendesk) as sync:
        sync.pause_webhook()  # only the export brings them
        ids = [sync.zendesk_ticket(subject=f"T{n}")["id"] for n in range(5)]
        sync.reset_calls()
        sync.fail_export_page(3)  # pages 1 and 2 answer, page 3 is a 500
        assert sync.poll() == 0
        failed = (sync.calls(), sync.rows(Cursor), len(sync.events("zendesk")))
        sync.reset_calls()
        new = sync.poll()
        sync.drain()
        cursor = sync.rows(Cursor)
        sync.reset_calls()
        replayed = sync.poll()
        sync.drain()
        calls = sync.calls()
        mirrored_ids = sorted(int(t["sourceId"]) for t in sync.planhat.list("tickets"))

    assert failed == (Calls(zendesk={EXPORT: 3}, planhat={}), [], 0)
    assert new == 5
    [row] = cursor
    assert row.source == "zendesk"
    assert int(row.position) > 0
    assert mirrored_ids == sorted(ids)
    # the replay (the look-back asks again) stores nothing new and writes nothing
    assert replayed == 0
    assert calls == Calls(zendesk={EXPORT: 3}, planhat={})


def test_14_a_deleted_zendesk_ticket_is_deleted_in_planhat_and_never_recreated(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.zendesk_delete(ticket)
        sync.drain()
        deleted = sync.calls()
        sync.reset_calls()
        sync.poll()  # the export lists it, status "deleted"
        sync.drain()
        crawled = sync.calls()
        left = [t for t in sync.planhat.list("tickets") if t["sourceId"] == str(ticket)]
        link = sync.links()[f"sourceId={ticket}"]

    assert left == []
    assert link.deleted_at is not None  # the tombstone
    # the soft_deleted event needs no read (nothing left to read); Planhat's single
    # delete of that ticket; nothing sent back to Zendesk
    assert deleted == Calls(zendesk={}, planhat={"DELETE /tickets/:id": 1})
    # the export's deleted item meets the tombstone: it costs Planhat nothing
    assert crawled == Calls(zendesk={EXPORT: 1}, planhat={})
    assert planhat_id


def test_15_a_case_or_whitespace_only_difference_makes_no_write(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync, priority="high")
        sync.ui_edit(planhat_id, status="New ", severity="HIGH")  # a CSM's spelling
        sync.drain()
        calls = sync.calls()
        letters = sync.letters()
        now = sync.zendesk_read(ticket)

    assert letters == []
    assert (now["status"], now["priority"]) == ("new", "high")
    assert calls == Calls(zendesk={TICKET_GET: 1}, planhat={"GET /tickets": 1})  # read, no PUT


def test_16_zendesk_429_retry_after_is_honoured_and_nothing_is_lost(
    start_sandbox: Start, tmp_path: Path
) -> None:
    # one update per ticket in 4 s (Zendesk: 30 in 10 minutes): a second CSM change
    # written soon after is answered 429 with a Retry-After (4 s, not 1: on a loaded
    # machine the second change took over a second to reach the write-back)
    zendesk = {"ticket_updates": 1, "ticket_window_s": 4.0}
    with zendesk_two_way(start_sandbox, tmp_path, zendesk_config=zendesk) as sync:
        # Zendesk's stamps a second behind: our write made in the second of the ticket's
        # creation (stamped the next) is not later than the CSM's next change
        sync.zendesk_ahead(-1)
        ticket, planhat_id = mirrored(sync)
        sync.ui_edit(planhat_id, status="pending")
        wait_for(lambda: sync.zendesk_read(ticket)["status"] == "pending")
        sync.ui_edit(planhat_id, status="hold")
        sync.drain()
        calls = sync.calls()
        stats = sync.zendesk_stats()
        now = sync.zendesk_read(ticket)
        letters = sync.letters()

    assert now["status"] == "hold"
    assert letters == []
    assert stats["rate_limited"] == 1  # retried after Retry-After, not before
    # reads: 3 before a PUT (one answered 429), 2 echoes (status_changed: a read and its
    # audits, the last one ours)
    assert calls.zendesk == {TICKET_GET: 5, TICKET_PUT: 3, AUDITS: 2}
    assert calls.planhat == {"GET /tickets": 2}


def test_16_planhat_429_is_honoured_and_nothing_is_lost(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, _ = mirrored(sync)
        sync.planhat_faults(rate_limit_storm_s=60)  # every Planhat call a 429 …
        sync.agent_edit(ticket, status="solved")
        wait_for(lambda: sync.planhat_stats()["rate_limited"] >= 1)
        sync.planhat_faults(rate_limit_storm_s=0.001)  # … until the storm is over
        sync.drain()
        calls = sync.calls()
        limited = sync.planhat_stats()["rate_limited"]
        status = sync.planhat_ticket(ticket)["status"]
        letters = sync.letters()

    assert status == "solved"
    assert letters == []
    assert limited >= 1
    assert calls.zendesk == {TICKET_GET: 1, AUDITS: 1}  # the status_changed event, its audits
    # the refused writes, the one that went through, then the Automation's hint read
    assert calls.planhat == {"PUT /tickets": limited + 1, "GET /tickets": 1}


def test_a_missed_webhook_is_caught_by_the_export_within_one_poll(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket, _ = mirrored(sync)
        sync.pause_webhook()  # Zendesk's delivery of the next change is lost
        sync.agent_edit(ticket, status="pending", priority="urgent")
        sync.drain()
        missed = (sync.calls(), sync.zendesk_stats()["webhook"]["dropped"])
        assert sync.poll() == 1
        sync.drain()
        calls = sync.calls()
        planhat = sync.planhat_ticket(ticket)

    assert missed == (Calls(zendesk={}, planhat={}), 2)
    assert (planhat["status"], planhat["severity"]) == ("pending", "urgent")
    # the export page carries the ticket whole (sideloaded): no read of it
    assert calls == Calls(zendesk={EXPORT: 1}, planhat={"PUT /tickets": 1, **ECHO_READ})


FORGERIES = ("wrong secret", "tampered body", "stale", "unsigned")


def forged(forgery: str) -> tuple[bytes, dict[str, str]]:
    """A Zendesk event as a forger sends it: the body and its headers."""
    body = json.dumps({"id": f"evt-{forgery}", "type": "zen:event-type:ticket.created",
                       "subject": "zen:ticket:1", "detail": {"id": "1"}}).encode()  # fmt: skip
    when = datetime.now(UTC) - (timedelta(minutes=6) if forgery == "stale" else timedelta())
    secret = "not-the-secret" if forgery == "wrong secret" else WEBHOOK_SECRET
    headers = signed_headers(secret, body, when)
    if forgery == "tampered body":
        body = body.replace(b"ticket:1", b"ticket:2")
    if forgery == "unsigned":
        headers = {"content-type": "application/json"}
    return body, headers


def test_a_forged_or_stale_zendesk_signature_is_a_401_with_nothing_stored(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        sync.reset_calls()
        answers = {}
        for forgery in FORGERIES:
            body, headers = forged(forgery)
            url = f"{sync.receiver.url}/webhooks/default/zendesk"
            answers[forgery] = stand_in_http.post(url, content=body, headers=headers)
        sync.drain()
        stored, letters, calls = sync.events("zendesk"), sync.letters(), sync.calls()

    assert {forgery: answer.status_code for forgery, answer in answers.items()} == dict.fromkeys(
        FORGERIES, 401
    )
    assert all("signature" in answer.json()["error"] for answer in answers.values())
    assert (stored, letters) == ([], [])
    assert calls == Calls(zendesk={}, planhat={})


def test_a_zendesk_401_403_or_404_on_write_back_is_a_dead_letter_with_zendesks_answer(
    start_sandbox: Start, tmp_path: Path
) -> None:
    answers = {
        "deleted": '404: {"error":"RecordNotFound"',
        "forbidden": '403: {"error":"Forbidden"',
        "revoked": '401: {"error":"Couldn\'t authenticate you"',
    }
    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        tickets = {refusal: mirrored(sync) for refusal in answers}
        sync.pause_webhook()  # gone from Zendesk, its deletion not seen yet
        sync.zendesk_delete(tickets["deleted"][0])
        calls = {}
        for refusal in answers:  # one after the other: a revoked token refuses them all
            if refusal == "forbidden":
                sync.zendesk_access(forbidden=True)
            if refusal == "revoked":
                sync.zendesk_access(forbidden=False, token="revoked")
            sync.reset_calls()
            sync.ui_edit(tickets[refusal][1], status="hold")
            sync.drain()
            calls[refusal] = sync.calls()
        letters = {letter.key_value: letter for letter in sync.letters()}

    assert sorted(letters) == sorted(str(ticket) for ticket, _ in tickets.values())
    for refusal, answer in answers.items():
        letter = letters[str(tickets[refusal][0])]
        assert letter.target == "zendesk"
        assert f"Zendesk answered GET ticket with {answer}" in letter.reason
        assert calls[refusal] == Calls(zendesk={TICKET_GET: 1}, planhat={"GET /tickets": 1})
