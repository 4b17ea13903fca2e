"""The embedded engine keeps one flush timer per connection, however often ingest asks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from cryptography.fernet import Fernet

from state.connections import Connections
from state.crypto import SecretBox
from state.db import make_engine, migrate
from tests.engine.conftest import change, queue, standard_body, store
from worker.runtime.embedded import embedded_runtime
from worker.runtime.settings import EngineSettings


def timers() -> int:
    return sum(isinstance(thread, threading.Timer) for thread in threading.enumerate())


def test_a_busy_connection_has_one_flush_timer_however_often_a_flush_is_asked_for(
    tmp_path: Path,
) -> None:
    # given a connection with an outbox item and an event still pending: every flush finds
    # it busy and schedules the next one itself
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    engine = make_engine(url)
    store(engine, standard_body("companies", "c1", 1))
    queue(engine, change())
    box = SecretBox(Fernet.generate_key().decode())
    _, dispatcher = embedded_runtime(
        url,
        lambda e: Connections(e, box=lambda: box, default=lambda: None),
        EngineSettings(flush_linger=0.02),
    )
    before = timers()
    try:
        # when ingest asks for a flush after every batch, for a second
        most = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            dispatcher.flush("default", 0.01)
            most = max(most, timers() - before)
            time.sleep(0.01)
    finally:
        dispatcher.stop()
        engine.dispose()

    # then one timer waits, and the one or two before it may still be ending their threads
    # (on a loaded machine); the chains ingest used to start grew by one per call (~100)
    assert most <= 4, most
