"""Ownership and conflicts, both ways (worker/pipeline/conflicts.py): a shared field edited
on both sides ends with the later writer's value on both; an owned field edited on the
wrong side is not propagated and is put back to the owner's value with the next change."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.db import session_scope
from state.tables import InboxEvent
from tests.engine.two_way import TwoWay, two_way
from tests.outbound import OutboundReceiver
from worker.runtime.jobs import run_flush, run_ingest_many
from worker.runtime.write_back_jobs import run_write_back

Start = Callable[[SandboxConfig], BackgroundSandbox]


@pytest.fixture
def receiver() -> Iterator[OutboundReceiver]:
    with OutboundReceiver() as server:
        yield server


def options(receiver: OutboundReceiver, **more: str) -> dict[str, str]:
    return {
        "standard.outbound_url": receiver.url,
        "standard.outbound_models": "tickets",
        **{f"standard.{name}": value for name, value in more.items()},
    }


def at(seconds_from_now: float) -> str:
    """A source version: an ISO time (a time Planhat's clock compares with)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).isoformat()


def one_ticket(sync: TwoWay, **fields: Any) -> str:
    assert sync.send("companies", "co-1", 1, {"name": "Acme"}).status_code == 202
    sync.drain()
    ticket = {"companyId": "srcid-co-1", "email": "ada@acme.example", "title": "Printer",
              "status": "open", **fields}  # fmt: skip
    assert sync.send("tickets", "tk-1", 1, ticket).status_code == 202
    sync.drain()
    [planhat_id] = [t["_id"] for t in sync.planhat.list("tickets")]
    return planhat_id


def in_planhat(sync: TwoWay) -> dict[str, Any]:
    [ticket] = sync.planhat.list("tickets")
    return ticket


def sent(receiver: OutboundReceiver) -> list[dict[str, Any]]:
    return [delivery.json()["fields"] for delivery in receiver.ok()]


def test_a_shared_field_edited_on_both_sides_ends_with_the_later_writers_value(
    start_sandbox: Start, tmp_path: Path, receiver: OutboundReceiver
) -> None:
    with two_way(
        start_sandbox, tmp_path, automations=("tickets",), options=options(receiver)
    ) as sync:
        planhat_id = one_ticket(sync)
        # a person sets it pending in Planhat now; the source's edit, from a minute ago,
        # arrives after: Planhat's is the later
        sync.ui_edit("tickets", planhat_id, {"status": "pending"})
        sync.drain()
        assert sync.send("tickets", "tk-1", at(-60), {"status": "solved"}).status_code == 202
        sync.drain()
        first = (in_planhat(sync)["status"], sent(receiver))
        # then the source edits it again, later than Planhat's edit: the source's wins
        assert sync.send("tickets", "tk-1", at(60), {"status": "closed"}).status_code == 202
        sync.drain()
        second = (in_planhat(sync)["status"], sent(receiver))

    assert first == ("pending", [{"status": "pending"}])  # the older "solved" went nowhere
    assert second == ("closed", [{"status": "pending"}])  # the source has it: nothing back


@pytest.mark.parametrize(("source_at", "wins"), [(-60, "planhat"), (60, "source")])
def test_both_edits_in_one_sync_end_with_the_later_writers_value_on_both_sides(
    start_sandbox: Start,
    tmp_path: Path,
    receiver: OutboundReceiver,
    source_at: float,
    wins: str,
) -> None:
    with two_way(
        start_sandbox, tmp_path, automations=("tickets",), options=options(receiver)
    ) as sync:
        planhat_id = one_ticket(sync)
        sync.dispatcher.stop()  # both edits wait for one ingest, flush and write-back
        sync.ui_edit("tickets", planhat_id, {"status": "pending"})
        sync.send("tickets", "tk-1", at(source_at), {"status": "solved"})
        sync.hint({"model": "tickets", "_id": planhat_id, "time": "x"})  # (the automation's
        # own hint may still be on its way: one is enough)
        with session_scope(sync.engine) as session:
            waiting = [e.id or 0 for e in session.exec(select(InboxEvent)) if e.status == "pending"]

        run_ingest_many(sync.runtime, waiting)
        time.sleep(0.1)  # past the flush's linger
        run_flush(sync.runtime, "default")
        run_write_back(sync.runtime, "default")
        status = in_planhat(sync)["status"]

    if wins == "planhat":
        assert (status, sent(receiver)) == ("pending", [{"status": "pending"}])
    else:
        assert (status, sent(receiver)) == ("solved", [])


def test_an_owned_field_edited_on_the_wrong_side_is_not_propagated_and_is_put_back(
    start_sandbox: Start, tmp_path: Path, receiver: OutboundReceiver
) -> None:
    given = options(receiver, source_owns="tickets.title", planhat_owns="tickets.severity")
    with two_way(start_sandbox, tmp_path, automations=("tickets",), options=given) as sync:
        planhat_id = one_ticket(sync, severity="low")

        # the title is the source's: edited in Planhat, it goes nowhere ...
        sync.ui_edit("tickets", planhat_id, {"title": "Edited in Planhat"})
        sync.drain()
        edited = (in_planhat(sync)["title"], sent(receiver))
        # ... and the source's next change puts it back
        assert sync.send("tickets", "tk-1", 2, {"status": "pending"}).status_code == 202
        sync.drain()
        reset = (in_planhat(sync)["title"], in_planhat(sync)["status"])

        # the severity is Planhat's: changed at the source, it is not written ...
        assert sync.send("tickets", "tk-1", 3, {"severity": "high"}).status_code == 202
        sync.drain()
        kept = in_planhat(sync)["severity"]
        # ... and the next change made in Planhat puts it back at the source
        sync.ui_edit("tickets", planhat_id, {"status": "closed"})
        sync.drain()

    assert edited == ("Edited in Planhat", [])
    assert reset == ("Printer", "pending")
    assert kept == "low"
    assert sent(receiver) == [{"status": "closed", "severity": "low"}]
