"""PLANHAT_SYNC_LOG_FORMAT: json lines that name the event being handled, a wrong value
refused at start, and Celery's worker leaving our levels as they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine

from state.db import session_scope
from tests.engine.conftest import standard_body, store
from tests.engine.services import TEST_REDIS_URL
from worker.pipeline.ingest import ingest
from worker.pipeline.ingest_batch import ingest_many
from worker.runtime import logs

PLANHAT_SYNC = str(Path(sys.executable).with_name("planhat-sync"))


@pytest.fixture
def json_logs() -> Iterator[None]:
    logs.configure("info", "json")
    yield
    logs.configure("warning")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text``, each parsed as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_written_while_handling_an_event_name_it(
    sqlite_engine: Engine, json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # given events that cannot be mapped (their dead letters are logged while handled),
    # one ingested alone and two in a batch
    bad = b'{"model": "licences", "key": {"sourceId": "x"}, "version": 1}'
    alone = store(sqlite_engine, bad, event_id="evt-alone")
    batch = [store(sqlite_engine, bad, event_id=f"evt-batch-{n}") for n in range(2)]
    ids = {"evt-alone": alone, **{f"evt-batch-{n}": batch[n] for n in range(2)}}
    good = store(sqlite_engine, standard_body("licenses", "sub_1", 1, mrr=5), event_id="evt-ok")

    # when they are ingested, then something is logged after
    with session_scope(sqlite_engine) as session:
        ingest(session, alone)
    with session_scope(sqlite_engine) as session:
        ingest_many(session, [*batch, good])
    structlog.get_logger("test").info("after.handling", events=4)

    # then every line is JSON, and each written for an event names it
    lines = json_lines(capsys.readouterr().err)
    buried = [line for line in lines if line["event"] == "ingest.event_buried"]
    assert sorted(line["event_id"] for line in buried) == [
        "evt-alone",
        "evt-batch-0",
        "evt-batch-1",
    ]
    for line in buried:
        assert (line["connection"], line["source"], line["level"]) == (
            "default",
            "standard",
            "warning",
        )
        assert line["inbox_id"] == ids[line["event_id"]]
        assert "timestamp" in line
    # and nothing stays bound once the event is handled
    [after] = [line for line in lines if line["event"] == "after.handling"]
    assert not {"event_id", "connection", "source"} & set(after)


@pytest.mark.parametrize("command", [["web"], ["worker"], ["dev", "--no-serve"]])
def test_a_bad_log_format_stops_the_command_at_start_with_one_line(
    command: list[str], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PLANHAT_SYNC_LOG_FORMAT": "xml",
        "DATABASE_URL": f"sqlite:///{tmp_path}/state.db",
    }
    ran = subprocess.run(
        [PLANHAT_SYNC, *command], env=env, capture_output=True, text=True, timeout=60,
        cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == [
        "error: PLANHAT_SYNC_LOG_FORMAT='xml' is not a log format; accepted: console, json"
    ]
    assert not (tmp_path / "state.db").exists()  # stopped before anything else


# What Celery's worker does with logging before it takes tasks (celery/apps/worker.py:
# on_init_blueprint sets logging up, on_start redirects stdout and stderr unless a
# setup_logging receiver took over), then a line of ours at info and one of Celery's.
UNDER_CELERY = textwrap.dedent(
    """
    import logging
    import structlog
    from worker.runtime.tasks import app
    worker = app.Worker(quiet=True, loglevel="INFO", redirect_stdouts=True, pool_cls="solo")
    worker.on_start()
    structlog.get_logger("worker.pipeline.flush").info("flush.done", written=3)
    logging.getLogger("celery.worker.consumer").info("Connected to %s", "the broker")
    """
)


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_celery_does_not_relabel_our_info_lines_as_warnings(log_format: str) -> None:
    env = {
        **os.environ,
        "PLANHAT_SYNC_LOG_LEVEL": "info",
        "PLANHAT_SYNC_LOG_FORMAT": log_format,
        "REDIS_URL": TEST_REDIS_URL,  # it never gets to store anything
    }
    ran = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", UNDER_CELERY],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "WARNING" not in ran.stderr, ran.stderr  # Celery's relabel: "WARNING/MainProcess]"
    ours = [line for line in ran.stderr.splitlines() if "flush.done" in line]
    celery = [line for line in ran.stderr.splitlines() if "Connected to" in line]
    assert len(ours) == len(celery) == 1, ran.stderr
    if log_format == "json":
        assert json.loads(ours[0])["level"] == json.loads(celery[0])["level"] == "info"
        assert json.loads(celery[0])["logger"] == "celery.worker.consumer"
    else:
        assert "[info     ] flush.done" in ours[0]
        assert "[info     ] Connected to the broker" in celery[0]
