"""Planhat as a source: a hint from a Planhat Automation, authenticated by a bearer secret,
makes the worker re-read the record from Planhat (never the hint's fields), within the
token's budget; links tie it to its source record; echoes are dropped by value; a deletion
becomes a tombstone that only the source creating the record again lifts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from connectors.change import fields_hash
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.planhat_source import SOURCE
from connectors.planhat_source.hints import verify
from connectors.webhooks import SignatureError
from state.db import session_scope
from state.tables import InboxEvent, RecordState
from tests.engine.two_way import FAST, PLANHAT_SECRET, TwoWay, two_way
from worker.runtime.jobs import run_ingest_many
from worker.runtime.ratelimit import budget_key
from worker.runtime.settings import EngineSettings

Start = Callable[[SandboxConfig], BackgroundSandbox]
COMPANY = {"name": "Acme", "externalId": "acme"}


def task(n: int, **fields: Any) -> dict[str, Any]:
    return {"mainType": "task", "companyId": "srcid-co-1", "action": f"Call {n}", **fields}


def with_tasks(sync: TwoWay, count: int) -> dict[str, str]:
    """A company and ``count`` tasks written into Planhat by the worker: key → _id."""
    assert sync.send("companies", "co-1", 1, COMPANY).status_code == 202
    sync.drain()
    for n in range(count):
        assert sync.send("tasks", f"t-{n}", 1, task(n, status="open")).status_code == 202
    sync.drain()
    return {link.key_value: link.planhat_id or "" for link in sync.links().values()}


def route(sync: TwoWay, name: str) -> int:
    count: int = sync.stats()["by_route"].get(name, 0)
    return count


# --- the hint and its event id -------------------------------------------------------


def test_a_hint_is_accepted_only_with_the_connections_bearer_secret() -> None:
    body = b'{"model": "tasks", "_id": "651f0c2e9a1b2c3d4e5f6a7b", "time": "t1"}'
    good = {"authorization": f"Bearer {PLANHAT_SECRET}"}

    event_id = verify(good, body, PLANHAT_SECRET, now=1000.0)

    assert event_id.startswith("tasks:651f0c2e9a1b2c3d4e5f6a7b:")
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": PLANHAT_SECRET}):
        with pytest.raises(SignatureError):
            verify(headers, body, PLANHAT_SECRET, now=1000.0)
    for bad in (b"[1]", b'{"model": "nope", "_id": "1"}', b'{"model": "tasks"}', b"{"):
        with pytest.raises(SignatureError):
            verify(good, bad, PLANHAT_SECRET, now=1000.0)


def test_the_event_id_is_stable_per_hint_and_new_per_edit() -> None:
    headers = {"authorization": f"Bearer {PLANHAT_SECRET}"}
    timed = b'{"model": "tasks", "_id": "a1", "time": "2026-01-01T00:00:00.001Z"}'
    later = b'{"model": "tasks", "_id": "a1", "time": "2026-01-01T00:00:05.000Z"}'
    untimed = b'{"model": "tasks", "_id": "a1"}'

    # the same hint delivered twice is one event; a later edit's hint is another
    assert verify(headers, timed, PLANHAT_SECRET, 1) == verify(headers, timed, PLANHAT_SECRET, 9)
    assert verify(headers, timed, PLANHAT_SECRET, 1) != verify(headers, later, PLANHAT_SECRET, 1)
    # without a time in the body, a hint a second later is not taken for a duplicate
    assert verify(headers, untimed, PLANHAT_SECRET, 1.2) == verify(
        headers, untimed, PLANHAT_SECRET, 1.7
    )
    assert verify(headers, untimed, PLANHAT_SECRET, 1) != verify(
        headers, untimed, PLANHAT_SECRET, 2
    )
    # an admin's Idempotency-Key wins
    keyed = {**headers, "idempotency-key": "run-7"}
    assert verify(keyed, untimed, PLANHAT_SECRET, 1) == "tasks:a1:run-7"


def test_the_detail_read_is_mapped_never_the_hint() -> None:
    read = b'{"model": "tasks", "_id": "a1", "record": {"_id": "a1", "status": "done",'
    read += b' "updatedAt": "2026-01-01T00:00:00Z", "createdAt": "x"}}'

    [change] = SOURCE.changes(read, "ev", {})
    [gone] = SOURCE.changes(b'{"model": "tasks", "_id": "a1", "record": null}', "ev", {})

    assert (change.origin, change.key_field, change.key, dict(change.fields)) == (
        "planhat", "_id", "a1", {"status": "done"}
    )  # fmt: skip
    assert change.version == 1_767_225_600_000_000
    assert (gone.action, dict(gone.fields)) == ("deleted", {})


# --- through the engine ------------------------------------------------------------------


def test_the_worker_rereads_the_record_and_ignores_the_hints_fields(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with two_way(start_sandbox, tmp_path) as sync:
        ids = with_tasks(sync, 1)
        # a person edits the task in Planhat; the hint claims something else
        sync.ui_edit("tasks", ids["t-0"], {"status": "done"})
        gets = route(sync, "GET /tasks/:id")

        answer = sync.hint({"model": "tasks", "_id": ids["t-0"], "status": "hacked"})
        sync.drain()

        assert answer.status_code == 202
        assert route(sync, "GET /tasks/:id") == gets + 1  # read once, from Planhat
        link = sync.links()["sourceId=t-0"]
        assert link.planhat_fields["status"] == "done"
        with session_scope(sync.engine) as session:
            state = session.get(RecordState, ("default", "tasks", "sourceId=t-0"))
            assert state is not None
            assert state.fields["status"] == "done"  # what Planhat holds now


def test_a_wrong_secret_is_refused_and_stores_nothing(start_sandbox: Start, tmp_path: Path) -> None:
    with two_way(start_sandbox, tmp_path) as sync:
        answer = sync.hint({"model": "tasks", "_id": "a" * 24}, secret="guessed")
        with session_scope(sync.engine) as session:
            stored = list(session.exec(select(InboxEvent)))

    assert answer.status_code == 401
    assert stored == []


def test_the_forward_flush_records_links_with_planhats_id_and_hashes(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with two_way(start_sandbox, tmp_path) as sync:
        ids = with_tasks(sync, 2)
        planhat = {t["sourceId"]: t for t in sync.planhat.list("tasks")}
        links = sync.links()

    assert ids == {"co-1": planhat_company_id(planhat), **{k: planhat[k]["_id"] for k in planhat}}
    link = links["sourceId=t-1"]
    assert (link.source, link.key_field, link.key_value) == ("standard", "sourceId", "t-1")
    assert link.planhat_fields == {"mainType": "task", "action": "Call 1", "status": "open"}
    assert link.planhat_written_hash == fields_hash(link.planhat_fields)
    assert link.source_read_hash == fields_hash(link.planhat_fields)  # what the source said
    assert link.planhat_written_at is not None
    assert link.planhat_read_hash is None  # nothing read back yet


def planhat_company_id(tasks: dict[str, dict[str, Any]]) -> str:
    company_ids = {t["companyId"] for t in tasks.values()}
    assert len(company_ids) == 1
    return company_ids.pop()


def test_an_echo_of_our_own_write_is_read_once_and_dropped(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with two_way(start_sandbox, tmp_path) as sync:
        ids = with_tasks(sync, 1)
        writes = route(sync, "PUT /tasks")

        for n in range(2):  # Planhat's automation for our write, and a second one
            sync.hint({"model": "tasks", "_id": ids["t-0"], "time": f"2026-01-01T00:00:0{n}Z"})
            sync.drain()

        with session_scope(sync.engine) as session:
            events = list(session.exec(select(InboxEvent).where(InboxEvent.source == "planhat")))
        link = sync.links()["sourceId=t-0"]
        assert [event.status for event in events] == ["done", "done"]
        assert link.planhat_read_hash == link.planhat_written_hash
        assert route(sync, "PUT /tasks") == writes


def test_many_hints_of_one_model_are_read_with_one_list_call(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with two_way(start_sandbox, tmp_path) as sync:
        ids = with_tasks(sync, 30)
        sync.dispatcher.stop()  # hold ingest while the hints arrive: one batch
        for key, planhat_id in ids.items():
            if key.startswith("t-"):
                sync.hint({"model": "tasks", "_id": planhat_id, "time": key})
        with session_scope(sync.engine) as session:
            pending = [e.id or 0 for e in session.exec(select(InboxEvent)) if e.status == "pending"]
        before = dict(sync.stats()["by_route"])
        run_ingest_many(sync.runtime, pending)
        after = sync.stats()["by_route"]

    assert len(pending) == 30
    assert after.get("GET /tasks", 0) - before.get("GET /tasks", 0) == 1
    assert after.get("GET /tasks/:id", 0) == before.get("GET /tasks/:id", 0)


def test_a_hint_waits_for_the_tokens_budget_without_an_attempt(
    start_sandbox: Start, tmp_path: Path
) -> None:
    slow = EngineSettings(**{**FAST.model_dump(), "rate_per_minute": 0.5, "burst": 1})
    with two_way(start_sandbox, tmp_path, config=slow) as sync:
        sync.dispatcher.stop()
        sync.hint({"model": "tasks", "_id": "b" * 24})
        with session_scope(sync.engine) as session:
            [event] = list(session.exec(select(InboxEvent)))
        budget_spent = sync.runtime.limiter.try_acquire  # the token's one budget
        assert budget_spent(budget_key("sync-token")) == 0.0  # another call took the last
        gets = route(sync, "GET /tasks/:id")
        run_ingest_many(sync.runtime, [event.id or 0])

        with session_scope(sync.engine) as session:
            after = session.get(InboxEvent, event.id)
            assert after is not None
            assert (after.status, after.detail, after.attempts) == ("pending", None, 0)
        assert route(sync, "GET /tasks/:id") == gets  # no call without budget


def test_deleting_in_planhat_tombstones_the_link_and_only_the_source_recreates_it(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with two_way(start_sandbox, tmp_path) as sync:
        ids = with_tasks(sync, 2)
        # given both tasks deleted in Planhat: one hint says so, the other only "updated"
        for key in ("t-0", "t-1"):
            sync.planhat.delete("tasks", ids[key])
        sync.hint({"model": "tasks", "_id": ids["t-0"], "action": "deleted"})
        sync.hint({"model": "tasks", "_id": ids["t-1"], "action": "updated"})  # read: 404
        sync.drain()
        tombstones = {k: link.deleted_at is not None for k, link in sync.links().items()}

        # when the source changes them later, they stay deleted
        for n in range(2):
            assert sync.send("tasks", f"t-{n}", 2, task(n, status="done")).status_code == 202
        sync.drain()
        after_updates = [t["sourceId"] for t in sync.planhat.list("tasks")]

        # and when the source itself creates one again, it comes back
        sync.send("tasks", "t-1", 3, task(1, status="open"), action="created")
        sync.drain()
        back = {t["sourceId"]: t["_id"] for t in sync.planhat.list("tasks")}
        links = sync.links()

    assert tombstones == {"sourceId=co-1": False, "sourceId=t-0": True, "sourceId=t-1": True}
    assert after_updates == []
    assert list(back) == ["t-1"]
    assert links["sourceId=t-1"].deleted_at is None
    assert links["sourceId=t-1"].planhat_id == back["t-1"] != ids["t-1"]
    assert links["sourceId=t-0"].deleted_at is not None
