"""Two-way, end to end on the embedded engine: the ``standard`` source both ways, the
sandbox's Automations firing on every write (the worker's own included), and a local fake
outbound receiver that records what it is sent (issue 14's done-when lines)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.standard.verify import verify
from state.db import session_scope
from state.tables import InboxEvent, WriteBackItem
from tests import stand_in_http
from tests.engine.two_way import FAST, STANDARD_SECRET, TwoWay, two_way
from tests.outbound import Delivery, OutboundReceiver
from worker.pipeline import dlq
from worker.runtime.settings import EngineSettings
from worker.runtime.write_back_jobs import run_reconcile

Start = Callable[[SandboxConfig], BackgroundSandbox]
COMPANY = {"name": "Acme", "externalId": "acme"}


@pytest.fixture
def receiver() -> Iterator[OutboundReceiver]:
    with OutboundReceiver() as server:
        yield server


def outbound(receiver: OutboundReceiver, models: str) -> dict[str, str]:
    return {"standard.outbound_url": f"{receiver.url}/planhat", "standard.outbound_models": models}


def ticket(n: int, **fields: Any) -> dict[str, Any]:
    return {"companyId": "srcid-co-1", "email": f"user{n}@acme.example", "title": f"T{n}",
            "status": "open", **fields}  # fmt: skip


def with_tickets(sync: TwoWay, count: int) -> dict[str, str]:
    """A company and ``count`` tickets written into Planhat by the worker: key → _id."""
    assert sync.send("companies", "co-1", 1, COMPANY).status_code == 202
    sync.drain()
    for n in range(count):
        assert sync.send("tickets", f"tk-{n}", 1, ticket(n)).status_code == 202
    sync.drain()
    tickets = {t["sourceId"]: t["_id"] for t in sync.planhat.list("tickets")}
    assert len(tickets) == count
    return tickets


def fired(sync: TwoWay) -> int:
    count: int = sync.stats()["automations"]["fired"]
    return count


def signed(delivery: Delivery) -> bool:
    """Whether the delivery's signature holds for the connection's standard secret."""
    webhook_id = verify(delivery.headers, delivery.body, STANDARD_SECRET, now=_now(delivery))
    return webhook_id == delivery.headers["webhook-id"]


def _now(delivery: Delivery) -> float:
    return float(delivery.headers["webhook-timestamp"])


@pytest.mark.timeout(300)  # 2,000 events and webhooks through one process; waits have deadlines
def test_no_ping_pong_500_records_written_by_the_worker_send_nothing_back(
    start_sandbox: Start, tmp_path: Path, receiver: OutboundReceiver
) -> None:
    automations = ("companies", "tasks")
    with two_way(
        start_sandbox, tmp_path, automations=automations, options=outbound(receiver, "tasks")
    ) as sync:
        # when the worker writes a company and 500 tasks, each write firing the automation
        assert sync.send("companies", "co-1", 1, COMPANY).status_code == 202
        for n in range(500):
            fields = {"mainType": "task", "companyId": "srcid-co-1", "action": f"Call {n}"}
            assert sync.send("tasks", f"t-{n}", 1, fields).status_code == 202
        sync.drain(timeout=240)
        created = sync.stats()["automations"]["fired"]
        # and then updates all 500 (the hints now race the flush recording its writes)
        for n in range(500):
            assert sync.send("tasks", f"t-{n}", 2, {"action": f"Call {n} again"}).status_code == 202
        sync.drain(timeout=240)
        stats = sync.stats()
        with session_scope(sync.engine) as session:
            hints = list(session.exec(select(InboxEvent).where(InboxEvent.source == "planhat")))
        links = sync.links()
        waiting, letters = sync.rows(WriteBackItem), sync.letters()

    # then every write fired once, every hint was read and dropped as an echo
    assert created == 501
    assert stats["automations"]["fired"] == 1001  # one per write: no further Planhat write
    assert stats["automations"]["delivered"] == 1001
    assert len(hints) == 1001
    assert {hint.status for hint in hints} == {"done"}
    assert len(links) == 501
    assert all(link.planhat_id for link in links.values())
    # no write of any other kind reached Planhat, and nothing went out
    writes = {route for route in stats["by_route"] if not route.startswith("GET")}
    assert writes == {"PUT /companies", "PUT /tasks"}
    assert receiver.all() == []
    assert (waiting, letters) == ([], [])


@pytest.mark.timeout(300)
def test_a_ui_edit_of_200_records_reaches_the_receiver_once_per_version_signed(
    start_sandbox: Start, tmp_path: Path, receiver: OutboundReceiver
) -> None:
    options = outbound(receiver, "tickets")
    with two_way(start_sandbox, tmp_path, automations=("tickets",), options=options) as sync:
        tickets = with_tickets(sync, 200)
        assert receiver.all() == []  # the worker's own writes went nowhere

        # when a person closes all 200, then sets 20 of them pending
        for planhat_id in tickets.values():
            sync.ui_edit("tickets", planhat_id, {"status": "closed"})
        sync.drain()
        first = receiver.all()
        for key in list(tickets)[:20]:
            sync.ui_edit("tickets", tickets[key], {"status": "pending"})
        sync.drain()
        everything = receiver.all()
        automations = sync.stats()["automations"]

    # then each version arrived once, signed, with the changed field only
    bodies = [delivery.json() for delivery in first]
    assert sorted(body["key"]["sourceId"] for body in bodies) == sorted(tickets)
    assert {body["_id"] for body in bodies} == set(tickets.values())
    assert all(body["fields"] == {"status": "closed"} for body in bodies)
    assert all(body["model"] == "tickets" for body in bodies)
    assert all(signed(delivery) for delivery in everything)
    later = [delivery.json() for delivery in everything[200:]]
    assert len(everything) == 220
    assert sorted(body["key"]["sourceId"] for body in later) == sorted(list(tickets)[:20])
    assert all(body["fields"] == {"status": "pending"} for body in later)
    assert len({delivery.headers["webhook-id"] for delivery in everything}) == 220
    # and writing back made no Planhat write: 200 created, 220 edits by a person
    assert automations["fired"] == 420


def test_a_receiver_answering_500_then_200_gets_each_once_after_retries(
    start_sandbox: Start, tmp_path: Path, receiver: OutboundReceiver
) -> None:
    options = outbound(receiver, "tickets")
    with two_way(start_sandbox, tmp_path, automations=("tickets",), options=options) as sync:
        tickets = with_tickets(sync, 20)
        receiver.answer(500, 200)

        for planhat_id in tickets.values():
            sync.ui_edit("tickets", planhat_id, {"status": "solved"})
        sync.drain()
        letters = sync.letters()

    tries = Counter(delivery.headers["webhook-id"] for delivery in receiver.all())
    taken = [delivery.json()["key"]["sourceId"] for delivery in receiver.ok()]
    assert sorted(taken) == sorted(tickets)  # each once
    assert set(tries.values()) == {2}  # refused once, taken the second time (same id)
    assert letters == []


def test_a_receiver_answering_400_gives_a_dead_letter_with_its_answer_and_dlq_retry_sends_it(
    start_sandbox: Start, tmp_path: Path, receiver: OutboundReceiver
) -> None:
    options = outbound(receiver, "tickets")
    with two_way(start_sandbox, tmp_path, automations=("tickets",), options=options) as sync:
        tickets = with_tickets(sync, 1)
        receiver.answer(400, body={"error": "ticket tk-0 is locked"})

        sync.ui_edit("tickets", tickets["tk-0"], {"status": "solved"})
        sync.drain()
        [letter] = sync.letters()

        # when the receiver is fixed and the dead letter retried
        receiver.answer(200)
        [outcome] = dlq.retry(sync.engine, [letter.id or 0])
        sync.dispatcher.write_back("default", 0.0)
        sync.drain()
        left = sync.letters()

    assert (letter.target, letter.model, letter.key) == ("standard", "tickets", "sourceId=tk-0")
    assert "400" in letter.reason
    assert "ticket tk-0 is locked" in letter.reason
    assert letter.attempts == 1  # refused: not retried
    assert letter.fields == {"status": "solved"}
    assert outcome.result == "queued to be written back"
    assert [d.status for d in receiver.all()] == [400, 200]
    assert receiver.all()[1].json()["fields"] == {"status": "solved"}
    assert left == []


def test_the_receiver_sending_our_change_back_is_an_echo(
    start_sandbox: Start, tmp_path: Path, receiver: OutboundReceiver
) -> None:
    options = outbound(receiver, "tickets")
    with two_way(start_sandbox, tmp_path, automations=("tickets",), options=options) as sync:
        tickets = with_tickets(sync, 1)
        sync.ui_edit("tickets", tickets["tk-0"], {"status": "solved"})
        sync.drain()
        [delivery] = receiver.all()
        writes = sync.stats()["by_route"]["PUT /tickets"]

        # when the receiver, having applied it, sends it back as its own change
        sent = delivery.json()
        echo = sync.send("tickets", "tk-0", 7, sent["fields"])
        sync.drain()
        stats = sync.stats()

    assert echo.status_code == 202
    assert stats["by_route"]["PUT /tickets"] == writes  # nothing written to Planhat
    assert len(receiver.all()) == 1  # and nothing sent back again


def test_a_missed_automation_is_brought_back_by_one_reconciliation_without_duplicates(
    start_sandbox: Start, tmp_path: Path, receiver: OutboundReceiver
) -> None:
    options = outbound(receiver, "tickets")
    with two_way(start_sandbox, tmp_path, automations=("tickets",), options=options) as sync:
        tickets = with_tickets(sync, 60)
        assert run_reconcile(sync.runtime) == 60  # the first scan: the worker's own writes
        sync.drain()
        assert receiver.all() == []  # ... all echoes

        # when the automation misses about 30% of a person's edits
        knob = stand_in_http.post(
            f"{sync.sandbox.url}/_sandbox/automations", json={"drop_rate": 0.3}
        )
        knob.raise_for_status()
        for planhat_id in tickets.values():
            sync.ui_edit("tickets", planhat_id, {"status": "closed"})
        sync.drain()
        dropped = sync.stats()["automations"]["dropped"]
        before = len(receiver.all())
        gets = sync.stats()["by_route"]["GET /tickets"]

        # and one reconciliation runs
        run_reconcile(sync.runtime)
        sync.drain()
        lists = sync.stats()["by_route"]["GET /tickets"] - gets

    assert 5 <= dropped <= 35
    assert before == 60 - dropped
    delivered = Counter(d.json()["key"]["sourceId"] for d in receiver.all())
    assert delivered == dict.fromkeys(tickets, 1)  # every change, each once
    assert lists == 1  # one page of the list, newest first


def test_a_flapping_record_is_quarantined_as_one_dead_letter_and_dlq_retry_releases_it(
    start_sandbox: Start, tmp_path: Path, receiver: OutboundReceiver
) -> None:
    options = outbound(receiver, "tickets")
    config = EngineSettings(**{**FAST.model_dump(), "flap_bounces": 4, "flap_minutes": 10})
    with two_way(
        start_sandbox, tmp_path, automations=("tickets",), options=options, config=config
    ) as sync:
        tickets = with_tickets(sync, 1)

        def bounce(version: int) -> None:
            """A person closes the ticket in Planhat; the partner's rule reopens it."""
            sync.ui_edit("tickets", tickets["tk-0"], {"status": "closed"})
            sync.drain()
            assert sync.send("tickets", "tk-0", version, {"status": "open"}).status_code == 202
            sync.drain()

        # when the two sides keep undoing each other: turns 1-2, 3-4, then 5 > 4
        for version in (2, 3, 4):
            bounce(version)
        letters = sync.letters()
        delivered = len(receiver.all())
        writes = sync.stats()["by_route"]["PUT /tickets"]
        # and go on: nothing moves any more, either way
        bounce(5)
        still = (len(receiver.all()), sync.stats()["by_route"]["PUT /tickets"], sync.letters())
        # (one dead letter however long it goes on)

        # then dlq retry releases it: the next change made in Planhat goes out again
        [outcome] = dlq.retry(sync.engine, [letters[0].id or 0])
        sync.ui_edit("tickets", tickets["tk-0"], {"status": "solved"})
        sync.drain()
        after = receiver.all()

    [letter] = letters
    assert letter.quarantine
    assert (letter.model, letter.key, letter.target) == ("tickets", "sourceId=tk-0", "standard")
    assert "flapping" in letter.reason
    assert letter.attempts == 5  # the turns counted
    assert delivered == 3
    assert still == (3, writes, letters)
    assert outcome.result == "released from quarantine"
    assert after[-1].json()["fields"] == {"status": "solved"}
    assert len(after) == 4
