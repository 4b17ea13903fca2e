"""``/metrics``: the process's (or, in multiprocess mode, the machine's) counters and
histograms (``worker/runtime/metrics.py``), and gauges read from the state store at
scrape time, so they are right however many workers and machines there are.

The state gauges, per connection (every stored one and ``default``, 0 when idle):

    planhat_sync_backlog{connection, kind}        pending: events (inbox, not yet
                                                  ingested), changes (outbox, not yet
                                                  confirmed by Planhat), write_backs
    planhat_sync_oldest_pending_seconds{connection}  age of the oldest of those
    planhat_sync_dead_letters{connection}         dead letters waiting for a person
    planhat_sync_state_store_up                   0 when the store did not answer
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import datetime

import structlog
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from state.db import session_scope
from state.tables import Connection, DeadLetter, InboxEvent, OutboxItem, WriteBackItem, utcnow
from worker.runtime.logs import describe

log = structlog.get_logger(__name__)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own setting, read at import
BACKLOG_KINDS = ("events", "changes", "write_backs")


class StateCollector(Collector):
    """Gauges computed from the state store each time Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "planhat_sync_state_store_up", "1 when the state store answered this scrape."
        )
        try:
            with session_scope(self._engine) as session:
                families = list(_state_gauges(session, utcnow()))
        except Exception as error:  # a scrape must still answer: with up 0, and why in the log
            log.warning("metrics.state_store_unavailable", error=describe(error))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _state_gauges(session: Session, now: datetime) -> Iterator[Metric]:
    names = {"default", *session.exec(select(Connection.name))}
    counts: dict[tuple[str, str], int] = {}
    oldest: dict[str, datetime] = {}

    def take(kind: str, rows: Iterable[tuple[str, int, datetime | None]]) -> None:
        for connection, count, first in rows:
            names.add(connection)
            counts[(connection, kind)] = count
            if first is not None and (connection not in oldest or first < oldest[connection]):
                oldest[connection] = first

    take("events", session.exec(
        select(InboxEvent.connection, func.count(), func.min(InboxEvent.received_at))
        .where(InboxEvent.status == "pending").group_by(InboxEvent.connection)
    ).all())  # fmt: skip
    take("changes", session.exec(
        select(OutboxItem.connection, func.count(), func.min(OutboxItem.enqueued_at))
        .group_by(OutboxItem.connection)
    ).all())  # fmt: skip
    take("write_backs", session.exec(
        select(WriteBackItem.connection, func.count(), func.min(WriteBackItem.enqueued_at))
        .group_by(WriteBackItem.connection)
    ).all())  # fmt: skip
    dead = dict(
        session.exec(
            select(DeadLetter.connection, func.count()).group_by(DeadLetter.connection)
        ).all()
    )
    backlog = GaugeMetricFamily(
        "planhat_sync_backlog",
        "Pending work per connection: events not yet ingested, changes not yet confirmed "
        "by Planhat, write-backs not yet taken by their source.",
        labels=["connection", "kind"],
    )
    age = GaugeMetricFamily(
        "planhat_sync_oldest_pending_seconds",
        "Age of the oldest pending event, change or write-back per connection (0: none).",
        labels=["connection"],
    )
    letters = GaugeMetricFamily(
        "planhat_sync_dead_letters", "Dead letters per connection.", labels=["connection"]
    )
    for name in sorted(names | set(dead)):
        for kind in BACKLOG_KINDS:
            backlog.add_metric([name, kind], counts.get((name, kind), 0))
        first = oldest.get(name)
        age.add_metric([name], max(0.0, (now - first).total_seconds()) if first else 0.0)
        letters.add_metric([name], dead.get(name, 0))
    yield from (backlog, age, letters)


class _ThisProcess(Collector):
    """The default registry's metrics: this process's counters, histograms and process_*."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry(engine: Engine) -> CollectorRegistry:
    """What one scrape reads: every process's files in multiprocess mode (that mode's
    documented set-up: a registry made per scrape), else this process's registry; and
    the state gauges."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_DIR):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
    else:
        registry.register(_ThisProcess())
    registry.register(StateCollector(engine))
    return registry


def add_metrics_route(app: FastAPI, engine: Engine) -> None:
    """Serve ``GET /metrics`` on ``app`` (``planhat-sync web`` and ``dev``). Keep it off
    the public internet: it names the tenants (route only ``/webhooks/`` through)."""

    async def metrics(_: Request) -> Response:
        body = await run_in_threadpool(lambda: generate_latest(scrape_registry(engine)))
        # The text format every Prometheus reads (the library's own server sends it too).
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    app.add_route("/metrics", metrics, methods=["GET"])
