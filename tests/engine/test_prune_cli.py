"""``planhat-sync prune --older-than …`` on SQLite and PostgreSQL: it takes 30d, 12h or 90m,
refuses anything else in one line (exit 2), and prints what it deleted as JSON."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner, Result

from state.db import session_scope
from state.tables import InboxEvent, utcnow
from tests.engine.conftest import store
from worker.cli import app


def prune_cli(engine: Engine, *args: str, **env: str) -> Result:
    url = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(app, ["prune", *args], env={"DATABASE_URL": url, **env})


def processed(engine: Engine, ago: timedelta) -> int:
    """An event received and processed ``ago``."""
    inbox_id = store(engine, b'{"a": 1}')
    with session_scope(engine) as session:
        event = session.get(InboxEvent, inbox_id)
        assert event is not None
        event.status, event.received_at = "done", utcnow() - ago
        event.processed_at = event.received_at
        session.add(event)
    return inbox_id


def left(engine: Engine) -> int:
    with session_scope(engine) as session:
        return len(session.exec(select(InboxEvent.id)).all())


@pytest.mark.parametrize(
    ("older_than", "kept"),
    [("30d", 3), ("12h", 2), ("90m", 1)],
)
def test_prune_takes_days_hours_or_minutes(engine: Engine, older_than: str, kept: int) -> None:
    # given events processed 40 days, 2 days, 5 hours and 10 minutes ago
    for ago in (timedelta(days=40), timedelta(days=2), timedelta(hours=5), timedelta(minutes=10)):
        processed(engine, ago)

    result = prune_cli(engine, "--older-than", older_than)

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["older_than"] == older_than
    assert (report["inbox_events"], report["dead_letters"]) == (4 - kept, 0)
    assert left(engine) == kept


@pytest.mark.parametrize("older_than", ["30", "30x", "-1d", "0d", "1.5d", "d", "30 days", ""])
def test_a_bad_age_is_refused_in_one_line_and_nothing_is_pruned(
    engine: Engine, older_than: str
) -> None:
    processed(engine, timedelta(days=400))

    result = prune_cli(engine, "--older-than", older_than)

    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --older-than {older_than!r} is not an age like 30d, 12h or 90m"
    ]
    assert left(engine) == 1


def test_without_an_age_prune_keeps_the_retention_setting(engine: Engine) -> None:
    processed(engine, timedelta(days=10))
    processed(engine, timedelta(days=3))

    result = prune_cli(engine, PLANHAT_SYNC_RETENTION_DAYS="7")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["older_than"] == "7d"
    assert left(engine) == 1


def test_with_retention_off_prune_deletes_nothing_unless_given_an_age(engine: Engine) -> None:
    processed(engine, timedelta(days=400))

    result = prune_cli(engine, PLANHAT_SYNC_RETENTION_DAYS="0")

    assert result.exit_code == 0, result.stderr
    assert "retention is off" in result.stdout
    assert left(engine) == 1
