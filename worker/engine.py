"""The engine's jobs, as plain functions over a ``Runtime``: what the Celery tasks (and the
embedded runner) call. Ingest, flush and sweep never depend on how they were scheduled.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import redis
import structlog
from sqlalchemy import Engine, func, or_
from sqlmodel import col, select

from connectors.planhat.client import PlanhatClient
from connectors.planhat.retry import RetryPolicy
from state.db import session_scope
from state.inbox import has_pending, lost_events, mark_dispatched
from state.tables import Connection, OutboxItem, utcnow
from worker.flush import FLUSH_ORDER, FlushReport, flush_batch
from worker.pipeline import IngestReport, ingest
from worker.ratelimit import RateLimiter, budget_key
from worker.settings import EngineSettings, Settings

log = structlog.get_logger(__name__)

MAX_COUNTDOWN = 60.0  # longer waits are a next_attempt_at in the database, found by sweeps
# Inside one flush the client retries a 5xx briefly; a 429 surfaces at once, so the shared
# pause is set for every worker instead of one worker sleeping on its own.
FLUSH_RETRY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=4.0, max_rate_limit_wait=0.0)


class Dispatcher(Protocol):
    """Sends jobs to whoever runs them (Celery, or the embedded runner's threads)."""

    def ingest(self, inbox_ids: Sequence[int]) -> None: ...

    def flush(self, connection: str, delay: float) -> None:
        """Ask for a flush of ``connection`` in ``delay`` seconds; one is enough."""
        ...

    def flush_started(self, connection: str) -> None:
        """A flush began: later requests must schedule a new one."""
        ...


class Locks(Protocol):
    def hold(self, name: str, ttl: float) -> AbstractContextManager[bool]:
        """Yields whether the lock was taken (never blocks); ``ttl`` bounds a dead holder."""
        ...


class RedisLocks:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    @contextmanager
    def hold(self, name: str, ttl: float) -> Iterator[bool]:
        lock = self._redis.lock(f"phs:lock:{name}", timeout=ttl, blocking=False)
        got = bool(lock.acquire())
        try:
            yield got
        finally:
            if got:
                # Expired meanwhile: someone else may hold it now; leave theirs alone.
                with suppress(redis.exceptions.LockError):
                    lock.release()


class LocalLocks:
    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, name: str, ttl: float) -> Iterator[bool]:
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        got = lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                lock.release()


@dataclass
class Tenants:
    """Planhat clients per connection; the ``default`` connection comes from the environment."""

    settings: Settings
    engine: Engine
    _clients: dict[str, tuple[PlanhatClient, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def planhat(self, connection: str) -> tuple[PlanhatClient, str]:
        with self._lock:
            if connection not in self._clients:
                base_url, token = self._credentials(connection)
                client = PlanhatClient(token, base_url=base_url, retry=FLUSH_RETRY)
                self._clients[connection] = (client, budget_key(token))
            return self._clients[connection]

    def _credentials(self, connection: str) -> tuple[str, str]:
        with session_scope(self.engine) as session:
            row = session.get(Connection, connection)
        if row is not None and row.planhat_token:
            return row.planhat_base_url, row.planhat_token
        if row is None and connection != "default":
            raise LookupError(f"no connection named {connection!r}")
        base_url = row.planhat_base_url if row is not None else self.settings.planhat_base_url
        return base_url, self.settings.planhat_token()


@dataclass
class Runtime:
    engine: Engine
    limiter: RateLimiter
    dispatcher: Dispatcher
    locks: Locks
    tenants: Tenants
    config: EngineSettings


def submit(rt: Runtime, inbox_ids: Sequence[int]) -> None:
    """Hand stored events to the workers (after their rows are committed)."""
    if not inbox_ids:
        return
    with session_scope(rt.engine) as session:
        mark_dispatched(session, inbox_ids)
    rt.dispatcher.ingest(inbox_ids)


def run_ingest(rt: Runtime, inbox_id: int) -> IngestReport:
    with session_scope(rt.engine) as session:
        report = ingest(session, inbox_id)
    if report.models:
        rt.dispatcher.flush(report.connection, rt.config.flush_window)
    return report


def run_flush(rt: Runtime, connection: str) -> list[FlushReport]:
    """Flush every model of ``connection``, parents first, until nothing is due."""
    rt.dispatcher.flush_started(connection)
    with session_scope(rt.engine) as session:
        busy = has_pending(session, connection)
        oldest = session.exec(
            select(func.min(OutboxItem.enqueued_at)).where(OutboxItem.connection == connection)
        ).one()
    if oldest is None:
        return []
    if busy and utcnow() - oldest < timedelta(seconds=rt.config.flush_max_delay):
        # Events are still coming in: let them coalesce into fuller batches.
        rt.dispatcher.flush(connection, rt.config.flush_window)
        return []
    reports: list[FlushReport] = []
    with rt.locks.hold(f"flush:{connection}", ttl=rt.config.lease_seconds) as got:
        if not got:  # another worker is flushing this connection
            rt.dispatcher.flush(connection, rt.config.flush_window)
            return []
        planhat, budget = rt.tenants.planhat(connection)
        policy = rt.config.policy()
        for model in FLUSH_ORDER:
            while True:
                report = flush_batch(
                    rt.engine,
                    planhat,
                    rt.limiter,
                    connection=connection,
                    model=model,
                    budget=budget,
                    policy=policy,
                )
                if report.sent or report.dropped or report.deferred:
                    reports.append(report)
                if report.retry_in is not None or not report.full:
                    break
            if reports and reports[-1].retry_in is not None and reports[-1].calls == 0:
                break  # out of budget: every model would wait alike
    _schedule_next(rt, connection)
    return reports


def _schedule_next(rt: Runtime, connection: str) -> None:
    now = utcnow()
    with session_scope(rt.engine) as session:
        due = session.exec(
            select(func.min(OutboxItem.next_attempt_at)).where(
                OutboxItem.connection == connection,
                or_(col(OutboxItem.claimed_until).is_(None), col(OutboxItem.claimed_until) < now),
            )
        ).one()
    if due is not None:
        delay = min(MAX_COUNTDOWN, max(0.0, (due - now).total_seconds()))
        rt.dispatcher.flush(connection, delay)


def run_sweep(rt: Runtime) -> tuple[int, int]:
    """Re-send what the broker lost: pending events whose task vanished, and connections
    with due outbox rows. Returns (events re-sent, flushes asked)."""
    now = utcnow()
    with session_scope(rt.engine) as session:
        lost = lost_events(session, lost_after=rt.config.lost_after)
        connections = list(
            session.exec(
                select(OutboxItem.connection)
                .where(OutboxItem.next_attempt_at <= now)
                .where(
                    or_(
                        col(OutboxItem.claimed_until).is_(None),
                        col(OutboxItem.claimed_until) < now,
                    )
                )
                .distinct()
            )
        )
    if lost:
        log.info("sweep.resend", events=len(lost))
        submit(rt, lost)
    for connection in connections:
        rt.dispatcher.flush(connection, 0.0)
    return len(lost), len(connections)
