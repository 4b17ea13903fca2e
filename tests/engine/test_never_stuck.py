"""Every accepted event ends applied or as a dead letter with a reason: never pending forever.

Values the state store cannot hold are refused where they are mapped, naming the field; an
event whose ingest keeps failing counts its tries and becomes a dead letter after the last;
events that keep failing never starve newer ones in the sweeper.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, insert
from sqlmodel import select

from connectors.change import Change, MappingError
from connectors.options import Option
from connectors.sources import SOURCES
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import session_scope
from state.inbox import lost_events, store_event
from state.tables import DeadLetter, InboxEvent, utcnow
from tests.engine.conftest import store
from tests.fakes import RecordingDispatcher
from tests.stripe.test_stripe import event_body
from worker.pipeline import dlq
from worker.pipeline.ingest import ingest
from worker.runtime.jobs import LocalLocks, PlanhatClients, Runtime, run_ingest_many
from worker.runtime.ratelimit import LocalRateLimiter
from worker.runtime.settings import EngineSettings


@pytest.mark.parametrize(
    ("fields", "key", "version", "says"),
    [
        ({"mrr": math.nan}, "k", 1, "field 'mrr' holds NaN or Infinity"),
        ({"mrr": math.inf}, "k", 1, "field 'mrr' holds NaN or Infinity"),
        ({"custom": {"score": -math.inf}}, "k", 1, "field 'custom' holds NaN or Infinity"),
        ({"name": "\ud800"}, "k", 1, "field 'name' holds text that is not Unicode"),
        ({"mrr": 1}, "k", 10**25, "the version is out of range"),
        ({"mrr": 1}, "k" * 300, 1, "the key is 300 characters (at most 255)"),
        ({"mrr": 1}, "a\x00b", 1, "the key holds a NUL character"),
    ],
)
def test_what_the_store_cannot_hold_is_refused_naming_it(
    fields: dict[str, Any], key: str, version: int, says: str
) -> None:
    with pytest.raises(MappingError, match=re.escape(says)):
        Change(model="licenses", key_field="sourceId", key=key, fields=fields, version=version)


def test_a_stripe_event_from_the_year_3e12_is_a_dead_letter_at_once(engine: Engine) -> None:
    event = json.loads(event_body("customer.created"))
    event["created"] = 1e20
    with session_scope(engine) as session:
        inbox_id = store_event(
            session, connection="default", source="stripe", event_id="evt_far",
            body=json.dumps(event).encode(),
        )  # fmt: skip
    assert inbox_id is not None

    with session_scope(engine) as session:
        ingest(session, inbox_id)

    with session_scope(engine) as session:
        [letter] = session.exec(select(DeadLetter)).all()
        status = session.get(InboxEvent, inbox_id)
    assert status is not None
    assert status.status == "failed"
    assert letter.reason.startswith("mapping failed")


@dataclass(frozen=True)
class BuggySource:
    """A source whose mapping has a bug (a KeyError), until ``fixed``."""

    fixed: bool = False
    name: str = "buggy"
    options: tuple[Option, ...] = ()
    checks_on_receipt: bool = False

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        return None

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return "unused"

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        record = json.loads(body)
        name = record["name"] if self.fixed else record["nmae"]
        return [Change(model="companies", key_field="sourceId", key=record["id"],
                       fields={"name": name}, version=1)]  # fmt: skip


def runtime(engine: Engine, max_attempts: int) -> Runtime:
    box = SecretBox(Fernet.generate_key().decode())
    tenant = Tenant(name="default", planhat_base_url="http://127.0.0.1:9", planhat_token="t",
                    secrets={})  # fmt: skip
    connections = Connections(engine, box=lambda: box, default=lambda: tenant)
    return Runtime(
        engine=engine,
        limiter=LocalRateLimiter(rate_per_minute=1e6, burst=1000),
        dispatcher=RecordingDispatcher(),
        locks=LocalLocks(),
        clients=PlanhatClients(connections),
        config=EngineSettings(max_attempts=max_attempts, backoff_base=0.01, backoff_cap=0.01),
    )


def test_an_event_whose_ingest_keeps_failing_is_a_dead_letter_after_the_last_try(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a mapping with a bug, and an event for it
    monkeypatch.setitem(SOURCES, "buggy", BuggySource())
    with session_scope(engine) as session:
        inbox_id = store_event(session, connection="default", source="buggy", event_id="e1",
                               body=b'{"id": "c1", "name": "Acme"}')  # fmt: skip
    assert inbox_id is not None
    rt = runtime(engine, max_attempts=3)

    # when the workers try it again and again
    attempts = []
    for _ in range(4):
        run_ingest_many(rt, [inbox_id])
        with session_scope(engine) as session:
            event = session.get(InboxEvent, inbox_id)
            assert event is not None
            attempts.append((event.status, event.attempts))

    # then: each try counted, and after the third it is a dead letter saying why
    assert attempts == [("pending", 1), ("pending", 2), ("failed", 3), ("failed", 3)]
    [letter] = dlq.list_dead_letters(engine)
    assert letter.reason == "gave up after 3 attempts: KeyError: 'nmae'"

    # and once the mapping is fixed, retrying the dead letter runs the event again
    monkeypatch.setitem(SOURCES, "buggy", BuggySource(fixed=True))
    [outcome] = dlq.retry(engine, None)
    assert outcome.result == "event re-run"
    with session_scope(engine) as session:
        event = session.get(InboxEvent, inbox_id)
        assert event is not None
        assert event.status == "done"


def test_events_that_keep_failing_never_starve_newer_ones(engine: Engine) -> None:
    # given: 5,000 events that keep failing (due again a little after each try) ...
    now = utcnow()
    stuck = [
        {"connection": "default", "source": "standard", "event_id": f"stuck-{n}", "body": b"{}",
         "received_at": now - timedelta(hours=1), "status": "pending", "attempts": 3,
         "next_attempt_at": now - timedelta(seconds=1), "dispatched_at": None}
        for n in range(5000)
    ]  # fmt: skip
    with session_scope(engine) as session:
        session.execute(insert(InboxEvent), stuck)
    # ... and one received a minute ago, whose task was lost
    fresh = store(engine, b"{}", event_id="fresh")
    with session_scope(engine) as session:
        event = session.get(InboxEvent, fresh)
        assert event is not None
        event.received_at = event.next_attempt_at = now - timedelta(minutes=1)
        session.add(event)

    with session_scope(engine) as session:
        found = lost_events(session, lost_after=0.0)

    assert len(found) == 5000
    assert fresh in found
