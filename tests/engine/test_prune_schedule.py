"""The daily prune is scheduled wherever beat's work is done: in Celery beat (a task on the
poll queue) and in the embedded runner's sweeper thread; PLANHAT_SYNC_RETENTION_DAYS=0
turns it off."""

from __future__ import annotations

import time
from datetime import timedelta

from celery.schedules import crontab
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlmodel import select

from state.connections import Connections
from state.crypto import SecretBox
from state.db import session_scope
from state.tables import InboxEvent, utcnow
from tests.engine.conftest import store
from worker.runtime.embedded import Sweeper, embedded_runtime
from worker.runtime.jobs import Runtime, run_prune
from worker.runtime.settings import EngineSettings


def old_processed_event(engine: Engine, days: float = 40) -> int:
    inbox_id = store(engine, b'{"a": 1}')
    with session_scope(engine) as session:
        event = session.get(InboxEvent, inbox_id)
        assert event is not None
        event.status, event.received_at = "done", utcnow() - timedelta(days=days)
        event.processed_at = event.received_at
        session.add(event)
    return inbox_id


def events(engine: Engine) -> list[int | None]:
    with session_scope(engine) as session:
        return list(session.exec(select(InboxEvent.id)))


def test_beat_runs_the_prune_task_daily_on_the_poll_queue() -> None:
    # Imported here: the module reads its settings once, at import (see test_dlq_cli.py).
    from worker.runtime.tasks import app

    entry = app.conf.beat_schedule["prune"]

    assert entry["task"] == "planhat_sync.prune"
    assert isinstance(entry["schedule"], crontab)
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({3}, {17})  # once a day
    assert app.conf.task_routes["planhat_sync.prune"] == {"queue": "poll"}
    assert "planhat_sync.prune" in app.tasks


def embedded(engine: Engine, config: EngineSettings) -> Runtime:
    url = engine.url.render_as_string(hide_password=False)
    box = SecretBox(Fernet.generate_key().decode())
    runtime, _ = embedded_runtime(
        url, lambda e: Connections(e, box=lambda: box, default=lambda: None), config
    )
    return runtime


def test_the_embedded_sweeper_prunes_once_it_is_running(engine: Engine) -> None:
    old = old_processed_event(engine)
    recent = old_processed_event(engine, days=1)
    runtime = embedded(engine, EngineSettings(retention_days=30))
    sweeper = Sweeper(runtime, interval=0.05)

    sweeper.start()
    try:
        deadline = time.monotonic() + 10
        while old in events(engine) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweeper.stop()
        sweeper.join(5)
        runtime.engine.dispose()

    assert events(engine) == [recent]


def test_retention_zero_turns_the_prune_off(engine: Engine) -> None:
    old = old_processed_event(engine, days=4000)

    runtime = embedded(engine, EngineSettings(retention_days=0))

    assert run_prune(runtime) is None
    assert events(engine) == [old]
    runtime.engine.dispose()
