"""The sync tools on a SQLite state store with state made the real way (a flush against
the sandbox that Planhat refuses, stored events): dead letters listed with their reason,
retried and dropped (with confirmation), a range replayed, a change mapped on a dry run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.tables import utcnow
from tests.engine.conftest import standard_body, store
from tests.engine.test_dlq_cli import NO_WAIT, bury_unowned_license, letters, outbox
from tests.mcp.tools import call, server_for
from tests.stripe.test_stripe import event_body


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("t", base_url=sandbox.url, retry=NO_WAIT) as client:
        yield client


def answer(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    content: dict[str, Any] = result.structured_content
    return content


def test_dead_letters_are_listed_with_their_reason_and_counted_in_the_status(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)
    server = server_for(sqlite_engine, sandbox)

    listed = answer(call(server, "list_dead_letters", {}))
    status = answer(call(server, "get_sync_status", {}))

    [letter] = listed["letters"]
    assert (letter["model"], letter["key"]) == ("licenses", "sourceId=l-bad")
    assert "missing required field companyId" in letter["reason"]
    [default] = status["connections"]
    assert default["dead_letters"] == 1
    assert status["problems"] == ["default: 1 dead letter(s) (planhat-sync dlq list)"]


def test_a_dead_letter_is_retried_only_for_real_with_writes_on(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)
    [letter] = letters(sqlite_engine)

    planned = answer(call(server_for(sqlite_engine, sandbox), "retry_dead_letter",
                          {"letter_id": letter.id}))  # fmt: skip
    off = call(server_for(sqlite_engine, sandbox), "retry_dead_letter",
               {"letter_id": letter.id, "dry_run": False})  # fmt: skip
    assert planned["done"] is False
    assert "would retry dead letter" in planned["message"]
    assert off.is_error
    assert len(letters(sqlite_engine)) == 1

    done = answer(call(server_for(sqlite_engine, sandbox, writes=True), "retry_dead_letter",
                       {"letter_id": letter.id, "dry_run": False}))  # fmt: skip

    assert done["results"] == [
        {"letter_id": letter.id, "connection": "default", "result": "queued"}
    ]
    assert letters(sqlite_engine) == []
    assert [item.key for item in outbox(sqlite_engine)] == ["sourceId=l-bad"]


def test_a_dead_letter_is_dropped_only_with_confirmation(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)
    [letter] = letters(sqlite_engine)
    server = server_for(sqlite_engine, sandbox, writes=True)

    refused = call(server, "drop_dead_letter", {"letter_id": letter.id, "dry_run": False})
    assert refused.is_error
    assert f"needs confirm={letter.id}" in str(refused.content)
    assert len(letters(sqlite_engine)) == 1

    answer(call(server, "drop_dead_letter",
                {"letter_id": letter.id, "dry_run": False, "confirm": letter.id}))  # fmt: skip

    assert letters(sqlite_engine) == []
    unknown = call(server, "drop_dead_letter", {"letter_id": 999})
    assert unknown.is_error
    assert "no dead letter with id 999" in str(unknown.content)


def test_a_range_is_replayed_through_mapping_and_diff(
    sqlite_engine: Engine, sandbox: BackgroundSandbox
) -> None:
    store(sqlite_engine, standard_body("companies", "acme", 1, name="Acme"), "evt-1")
    store(sqlite_engine, standard_body("companies", "beta", 1, name="Beta"), "evt-2")
    since = (utcnow() - timedelta(minutes=5)).isoformat()
    server = server_for(sqlite_engine, sandbox, writes=True)

    planned = answer(call(server, "replay_events", {"since": since}))
    empty = answer(call(server, "replay_events", {"since": since, "until": since}))
    done = answer(call(server, "replay_events", {"since": since, "dry_run": False}))
    bad = call(server, "replay_events", {"since": "yesterday"})

    assert planned["message"] == "would replay 2 stored event(s); nothing done"
    assert empty["message"] == "would replay 0 stored event(s); nothing done"
    assert done["results"] == [{"events": 2, "queued": 2, "connections": ["default"]}]
    assert sorted(item.key for item in outbox(sqlite_engine)) == ["sourceId=acme", "sourceId=beta"]
    assert bad.is_error
    assert "'yesterday' is not an ISO time" in str(bad.content)


def test_a_dry_run_send_maps_the_event_and_sends_nothing(
    sqlite_engine: Engine, sandbox: BackgroundSandbox
) -> None:
    event = json.loads(event_body("customer.created"))

    planned = answer(call(server_for(sqlite_engine, sandbox), "send_change",
                          {"source": "stripe", "body": event}))  # fmt: skip
    refused = call(server_for(sqlite_engine, sandbox), "send_change",
                   {"source": "stripe", "body": {"not": "an event"}})  # fmt: skip

    assert planned["message"] == "would make 1 change(s); nothing sent"
    [company] = planned["results"]
    assert (company["model"], company["key"]) == ("companies", "externalId=cus_00000000000000")
    assert refused.is_error
    assert "the stripe mapping refuses this event" in str(refused.content)
