"""Issue 16's done-when scenarios of bad input and faults (two-way-sync.md "Test
scenarios" 10, 11, 13, 16), Intercom ⇄ Planhat through the engine with both stand-ins,
each asserting exactly the calls the worker made on both sides: dead letters, a failing
search page, 429s on either side, forged signatures. 1-3, 6, 8, 9, 12:
test_intercom_scenarios.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from connectors.intercom.verify import signed_headers
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.tables import Cursor
from tests import stand_in_http
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
from tests.intercom.stand_in import CLIENT_SECRET, wait_for

Start = Callable[[SandboxConfig], BackgroundSandbox]


def test_10_a_contact_without_an_email_is_a_dead_letter_saying_so(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        sync.reset_calls()
        ticket = sync.intercom_ticket(email=None)
        sync.drain()
        calls = sync.calls()
        letters = sync.letters()
        events = sync.events("intercom")

    [letter] = letters
    assert f"intercom ticket {ticket['id']}: its contact has no e-mail" in letter.reason
    assert [event.status for event in events] == ["failed"]  # kept, marked
    assert calls == Calls(intercom={TICKET_GET: 1, **CONTACT_READ}, planhat={})


def test_11_no_company_matches_a_dead_letter_names_the_hints_and_the_fix(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        sync.reset_calls()
        ticket = sync.intercom_ticket(email="bob@elsewhere.example", company="globex")
        sync.drain()
        calls = sync.calls()
        letters = sync.letters()

    [letter] = letters
    assert letter.key_value == ticket["id"]
    assert "its contact's companies' company_id ('globex') is no company's externalId" in (
        letter.reason
    )
    assert "no Planhat company has the domain elsewhere.example" in letter.reason
    assert calls.intercom == {TICKET_GET: 1, **CONTACT_READ}
    assert set(calls.planhat) == {"GET /companies"}  # no ticket sent


def test_13_a_failing_search_page_leaves_the_cursor_and_the_replay_is_idempotent(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path, intercom_config={"page_size": 2}) as sync:
        sync.pause_webhook()  # only the search brings them
        ids = [sync.intercom_ticket()["id"] for _ in range(5)]
        sync.reset_calls()
        sync.intercom_faults(fail_search=3)  # pages 1 and 2 answer, page 3 is a 500
        assert sync.poll() == 0
        failed = (sync.calls(), sync.rows(Cursor), len(sync.events("intercom")))
        sync.reset_calls()
        new = sync.poll()
        sync.drain()
        cursor = sync.rows(Cursor)
        sync.reset_calls()
        replayed = sync.poll()
        sync.drain()
        calls = sync.calls()
        mirrored_ids = sorted(t["sourceId"] for t in sync.planhat.list("tickets"))

    assert failed == (Calls(intercom={SEARCH: 3}, planhat={}), [], 0)
    assert new == 5
    [row] = cursor
    assert row.source == "intercom"
    assert int(row.position) > 0
    assert mirrored_ids == sorted(ids)
    # the replay (the look-back asks again) stores nothing new and writes nothing
    assert replayed == 0
    assert calls == Calls(intercom={SEARCH: 3}, planhat={})


def test_16_an_intercom_429_while_completing_waits_for_the_reset_and_costs_no_attempt(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        ticket, _ = mirrored(sync)
        sync.intercom_faults(rate_limited=1, reset_in_s=1)  # the next request a 429
        sync.admin_edit(ticket, state="in_progress")
        wait_for(lambda: sync.intercom_stats()["rate_limited"] == 1)
        waiting = [(e.status, e.attempts) for e in sync.events("intercom")][-1]
        sync.drain()
        calls = sync.calls()
        event = sync.events("intercom")[-1]
        status = sync.planhat_ticket(ticket)["status"]
        letters = sync.letters()

    assert waiting == ("pending", 0)
    assert (event.status, event.attempts, status, letters) == ("done", 1, "in_progress", [])
    # the read refused, then asked again after the reset: once
    assert calls == Calls(intercom={TICKET_GET: 2}, planhat={"PUT /tickets": 1, **ECHO_READ})


def test_16_an_intercom_429_on_write_back_waits_for_the_reset_and_nothing_is_lost(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.intercom_faults(rate_limited=1, reset_in_s=1)  # the write's read a 429
        sync.ui_edit(planhat_id, status="resolved")
        sync.drain()
        calls = sync.calls()
        stats = sync.intercom_stats()
        state = sync.intercom_state(ticket)
        letters = sync.letters()

    assert (state, letters, stats["rate_limited"]) == (STATES["resolved"], [], 1)
    # read (429), read, states, PUT; its two notifications read and dropped
    assert calls == Calls(intercom={TICKET_GET: 4, STATES_GET: 1, TICKET_PUT: 1}, planhat=ECHO_READ)


def test_16_planhat_429_is_honoured_and_nothing_is_lost(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        ticket, _ = mirrored(sync)
        sync.planhat_faults(rate_limit_storm_s=60)  # every Planhat call a 429 …
        sync.admin_edit(ticket, state="resolved")
        wait_for(lambda: sync.planhat_stats()["rate_limited"] >= 1)
        sync.planhat_faults(rate_limit_storm_s=0.001)  # … until the storm is over
        sync.drain()
        calls = sync.calls()
        limited = sync.planhat_stats()["rate_limited"]
        status = sync.planhat_ticket(ticket)["status"]
        letters = sync.letters()

    assert (status, letters) == ("resolved", [])
    assert limited >= 1
    assert calls.intercom == {TICKET_GET: 2}  # state updated, closed: each read once
    # the refused writes, the one that went through, then the Automation's hint read
    assert calls.planhat == {"PUT /tickets": limited + 1, "GET /tickets": 1}


FORGERIES = ("wrong secret", "tampered body", "unsigned", "not hex")


def forged(forgery: str) -> tuple[bytes, dict[str, str]]:
    """An Intercom notification as a forger sends it: the body and its headers."""
    body = json.dumps({"type": "notification_event", "id": f"notif_{forgery}",
                       "topic": "ticket.created",
                       "data": {"item": {"type": "ticket", "id": "1"}}}).encode()  # fmt: skip
    secret = "not-the-secret" if forgery == "wrong secret" else CLIENT_SECRET
    headers = signed_headers(secret, body)
    if forgery == "tampered body":
        body = body.replace(b'"id": "1"', b'"id": "2"')
    if forgery == "unsigned":
        headers = {"content-type": "application/json"}
    if forgery == "not hex":
        headers["X-Hub-Signature"] = "sha256=" + headers["X-Hub-Signature"][5:]
    return body, headers


def test_a_forged_intercom_signature_is_a_401_with_nothing_stored(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with intercom_two_way(start_sandbox, tmp_path) as sync:
        sync.reset_calls()
        answers = {}
        for forgery in FORGERIES:
            body, headers = forged(forgery)
            url = f"{sync.receiver.url}/webhooks/default/intercom"
            answers[forgery] = stand_in_http.post(url, content=body, headers=headers)
        sync.drain()
        stored, letters, calls = sync.events("intercom"), sync.letters(), sync.calls()

    assert {forgery: answer.status_code for forgery, answer in answers.items()} == dict.fromkeys(
        FORGERIES, 401
    )
    assert all("signature" in answer.json()["error"].lower() for answer in answers.values())
    assert (stored, letters) == ([], [])
    assert calls == Calls(intercom={}, planhat={})
