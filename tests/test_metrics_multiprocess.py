"""PROMETHEUS_MULTIPROC_DIR: what several processes count (Celery's prefork children,
the receiver's workers) is added up by one scrape, beside the state store's gauges."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from tests.engine.conftest import standard_body, store
from worker.runtime.metrics_state import MULTIPROC_DIR, scrape_registry

# One worker process: it settles three companies and times one Planhat call, then exits.
WORKER = textwrap.dedent(
    """
    from worker.runtime import metrics
    metrics.records_settled("default", "companies", {"applied": 3, "dead": 0})
    metrics.records_confirmed("default", "companies", [0.5, 1.5, 2.5])
    metrics.planhat_call("PUT", "/companies", "ok", 0.2)
    """
)


def test_one_scrape_adds_up_what_every_process_counted(
    tmp_path: Path, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two worker processes that counted into one directory, and an event pending
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, MULTIPROC_DIR: str(directory)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", WORKER], env=env, check=True, timeout=60)
    store(sqlite_engine, standard_body("companies", "c-1", 1, name="Acme"))

    # when the receiver, in multiprocess mode too, is scraped
    monkeypatch.setenv(MULTIPROC_DIR, str(directory))
    text = generate_latest(scrape_registry(sqlite_engine)).decode()

    # then the numbers are both processes' together, and the gauges the store's
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    applied = (("connection", "default"), ("model", "companies"), ("outcome", "applied"))
    assert samples[("planhat_sync_records_total", applied)] == 6
    lag = (("connection", "default"), ("model", "companies"))
    assert samples[("planhat_sync_lag_seconds_count", lag)] == 6
    assert samples[("planhat_sync_lag_seconds_sum", lag)] == pytest.approx(9.0)
    call = (("model", "companies"), ("outcome", "ok"))
    assert samples[("planhat_sync_planhat_call_seconds_count", call)] == 2
    assert samples[("planhat_sync_backlog", (("connection", "default"), ("kind", "events")))] == 1
    assert samples[("planhat_sync_oldest_pending_seconds", (("connection", "default"),))] > 0
