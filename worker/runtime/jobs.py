"""The engine's jobs, as plain functions over a ``Runtime``: what the Celery tasks (and the
embedded runner) call. Ingest, flush and sweep never depend on how they were scheduled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import redis
import structlog
from sqlalchemy import Engine, or_
from sqlmodel import col, select

from connectors.planhat.client import PlanhatClient
from state.connections import LockedConnectionError
from state.db import session_scope
from state.inbox import lost_events, mark_dispatched
from state.prune import Pruned, prune
from state.tables import OutboxItem, utcnow
from worker.intake.details import complete
from worker.intake.poll import SourceApis, feeds, poll
from worker.intake.reread import reread
from worker.pipeline.batch import FlushReport
from worker.pipeline.flush import FLUSH_ORDER, FlushPlan, flush_batch, flush_plan, prepare_hooks
from worker.pipeline.ingest import IngestReport, ingest, record_failure
from worker.pipeline.ingest_batch import ingest_many
from worker.pipeline.write_back import connections_due
from worker.runtime import metrics
from worker.runtime.caches import MappingOptions, PlanhatClients, PrepareMemos
from worker.runtime.logs import describe
from worker.runtime.ratelimit import (
    LocalRateLimiter,
    RateLimiter,
    WriteLimiters,
    wait_for_budget,
)
from worker.runtime.settings import EngineSettings, MissingTokenError

log = structlog.get_logger(__name__)

MAX_COUNTDOWN = 60.0  # longer waits are a next_attempt_at in the database, found by sweeps
# The longest a flush sleeps for its turn in the budget; longer, it asks to run again then.
PACE_SLEEP = 1.0
PRUNE_EVERY = 24 * 3600.0  # seconds between prunes in the embedded runner


class Dispatcher(Protocol):
    """Sends jobs to whoever runs them (Celery, or the embedded runner's threads).

    Stored events are queued (``ingest``, or ``ingest_async`` on an event loop) and ingest
    jobs (several at once, each in its own ``slot``) take them in batches
    (``take_ingest_batch``) until none is left.
    """

    def ingest(self, inbox_ids: Sequence[int]) -> None:
        """Queue committed events for ingest, and start an ingest job unless one runs."""
        ...

    async def ingest_async(self, inbox_ids: Sequence[int]) -> None:
        """``ingest`` without blocking the event loop (the receiver's hot path)."""
        ...

    def take_ingest_batch(self, size: int, slot: int = 0, release: bool = True) -> list[int]:
        """Up to ``size`` queued ids for the ingest job of ``slot``. [] when none is left;
        then, with ``release``, the job must stop (a new one is started for new ids);
        without, it may ask again."""
        ...

    async def ready(self) -> None:
        """Raise unless the broker answers."""
        ...

    def flush(self, connection: str, delay: float) -> None:
        """Ask for a flush of ``connection`` in ``delay`` seconds; one is enough."""
        ...

    def flush_started(self, connection: str) -> None:
        """A flush began: later requests must schedule a new one."""
        ...

    def write_back(self, connection: str, delay: float) -> None:
        """Ask for a write-back run of ``connection`` in ``delay`` seconds; one is enough."""
        ...

    def write_back_started(self, connection: str) -> None:
        """A write-back run began: later requests must schedule a new one."""
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
class Runtime:
    engine: Engine
    limiter: RateLimiter
    dispatcher: Dispatcher
    locks: Locks
    clients: PlanhatClients
    config: EngineSettings
    apis: SourceApis = field(default_factory=SourceApis)  # local fakes in tests
    # Each connection's scratch space for prepare hooks (their caches), bounded.
    prepare_memo: PrepareMemos = field(default_factory=PrepareMemos)
    # Connections' mapping options as ingest last read them (a few seconds).
    options: MappingOptions = field(default_factory=MappingOptions)
    # The flush's share of each token's budget (flush_budget_share of rate_per_minute, in
    # even steps: no burst of its own on top of the token's). None: one in this process.
    pacer: RateLimiter | None = None
    flush_pacer: RateLimiter = field(init=False)
    # Write-back budgets, per source credential (worker/runtime/write_back_jobs.py).
    write_limiters: WriteLimiters = field(default_factory=WriteLimiters)

    def __post_init__(self) -> None:
        local = LocalRateLimiter(rate_per_minute=self.config.flush_rate(), burst=1)
        self.flush_pacer = self.pacer or local


def submit(rt: Runtime, inbox_ids: Sequence[int]) -> None:
    """Hand stored events to the workers (after their rows are committed)."""
    if not inbox_ids:
        return
    with session_scope(rt.engine) as session:
        mark_dispatched(session, inbox_ids)
    rt.dispatcher.ingest(inbox_ids)


INGEST_CHUNK = 50  # events per transaction when ingesting a batch
INGEST_POLL = 0.02  # seconds between looks at an empty queue while a job lingers


def run_ingest_many(rt: Runtime, inbox_ids: Sequence[int]) -> int:
    """Ingest a batch of events, ``INGEST_CHUNK`` to a transaction (one commit for many
    events). A chunk that fails is tried once more (another batch inserted a row this one
    also found missing: it is there now), then one event per transaction; an event that
    still fails counts an attempt and is tried again after a back-off, until it becomes a
    dead letter (``fail``). Returns how many changes were queued."""
    queued = 0
    to_flush: set[str] = set()
    to_write_back: set[str] = set()
    complete(rt.engine, rt.clients.connections, rt.apis, inbox_ids, lambda i, why: fail(rt, i, why))
    reread(rt.engine, rt.clients, rt.limiter, inbox_ids, lambda i, why: fail(rt, i, why),
           max_wait=rt.config.max_budget_wait)  # fmt: skip
    defaults = rt.clients.connections.options("default")
    for start in range(0, len(inbox_ids), INGEST_CHUNK):
        chunk = inbox_ids[start : start + INGEST_CHUNK]
        reports = _ingest_chunk(rt, chunk, defaults)
        for report in reports:  # committed
            metrics.event_ingested(report.connection, report.source, report.status,
                                   report.verdicts)  # fmt: skip
            queued += report.queued
            if report.models:
                to_flush.add(report.connection)
            if report.write_back:
                to_write_back.add(report.connection)
    for connection in to_flush:
        rt.dispatcher.flush(connection, rt.config.flush_linger)
    for connection in to_write_back:
        rt.dispatcher.write_back(connection, rt.config.flush_linger)
    return queued


def _ingest_chunk(
    rt: Runtime, chunk: Sequence[int], defaults: Mapping[str, str]
) -> list[IngestReport]:
    for attempt in range(2):
        try:
            with session_scope(rt.engine) as session:
                return ingest_many(session, chunk, default_options=defaults, options=rt.options)
        except Exception as error:
            log.warning("ingest.chunk_failed", events=len(chunk), attempt=attempt + 1,
                        error=describe(error))  # fmt: skip
    reports = []
    for inbox_id in chunk:
        try:
            with session_scope(rt.engine) as session:
                reports.append(ingest(session, inbox_id, default_options=defaults))
        except Exception as failure:
            log.warning("ingest.failed", inbox_id=inbox_id, error=describe(failure))
            fail(rt, inbox_id, describe(failure))
    return reports


def fail(rt: Runtime, inbox_id: int, reason: str) -> None:
    """Count a failed try at a pending event; after ``max_attempts``, a dead letter."""
    policy = rt.config.policy()
    try:
        with session_scope(rt.engine) as session:
            record_failure(session, inbox_id, reason, max_attempts=policy.max_attempts,
                           backoff=policy.backoff)  # fmt: skip
    except Exception as error:  # the database itself: the event stays pending for the sweeper
        log.warning("ingest.failure_not_recorded", inbox_id=inbox_id, error=describe(error))


def run_ingest_queue(rt: Runtime, batch: int, slot: int = 0, linger: float = 0.0) -> int:
    """The ingest job of ``slot``: take queued events ``batch`` at a time until none is
    left, and none came for ``linger`` seconds (at a trickle one job keeps taking events as
    they come, instead of a task started and stopped for each). Ids taken by a job that
    dies are still pending in the inbox: the sweeper sends them again. Returns how many
    events it took."""
    taken = 0
    idle_since: float | None = None
    while True:
        lingering = linger > 0 and (idle_since is None or time.monotonic() - idle_since < linger)
        ids = rt.dispatcher.take_ingest_batch(batch, slot, release=not lingering)
        if ids:
            run_ingest_many(rt, ids)
            taken += len(ids)
            idle_since = None
        elif not lingering:
            return taken  # its flag is down: the next id starts a new job
        else:
            if idle_since is None:
                idle_since = time.monotonic()
            time.sleep(INGEST_POLL)


def run_flush(rt: Runtime, connection: str) -> list[FlushReport]:
    """Send every model of ``connection`` that is ready (``flush_plan``), parents first,
    paced to the flush's share of the token's budget; then ask for the next flush when the
    next row will be ready."""
    rt.dispatcher.flush_started(connection)
    plan = _plan(rt, connection)
    if not plan.ready:
        _flush_later(rt, connection, plan.next_in)
        return []
    with rt.locks.hold(f"flush:{connection}", ttl=rt.config.lease_seconds) as got:
        if not got:  # another worker is flushing this connection
            rt.dispatcher.flush(connection, max(rt.config.flush_linger, PACE_SLEEP))
            return []
        try:
            lease = rt.clients.lease(connection)
        except LockedConnectionError:
            # Its rows wait in the outbox; Connections logs why, once a minute, not per try.
            rt.dispatcher.flush(connection, MAX_COUNTDOWN)
            return []
        except (LookupError, MissingTokenError) as error:
            log.error("flush.no_planhat", connection=connection, error=str(error))
            rt.dispatcher.flush(connection, MAX_COUNTDOWN)
            return []
        with lease as (planhat, budget):
            reports, paced = _flush_models(rt, connection, planhat, budget, plan.ready)
    after = _plan(rt, connection)
    if paced is not None and after.ready:
        _flush_later(rt, connection, paced)
    else:
        _flush_later(rt, connection, 0.0 if after.ready else after.next_in)
    return reports


def _plan(rt: Runtime, connection: str) -> FlushPlan:
    return flush_plan(
        rt.engine, connection, batch_size=rt.config.batch_size, linger=rt.config.flush_linger
    )


def _flush_later(rt: Runtime, connection: str, delay: float | None) -> None:
    if delay is not None:
        rt.dispatcher.flush(connection, min(MAX_COUNTDOWN, delay))


def _flush_models(
    rt: Runtime, connection: str, planhat: PlanhatClient, budget: str, ready: frozenset[str]
) -> tuple[list[FlushReport], float | None]:
    """Flush the ready models; returns the reports, and the wait when the flush's share of
    the budget ran out first (None when it did not)."""
    reports: list[FlushReport] = []
    policy = rt.config.policy()
    memo = rt.prepare_memo.get(connection)
    for model in (name for name in FLUSH_ORDER if name in ready):
        while True:
            # Each call first takes its turn from the flush's share of the token's budget
            # (PLANHAT_SYNC_FLUSH_BUDGET_SHARE): what is left is the reverse path's, the
            # polls' and the prepare reads'. A short wait is slept; a longer one ends the
            # round, and children never pass their parents.
            wait = wait_for_budget(rt.flush_pacer, budget, max_wait=PACE_SLEEP)
            if wait > 0:
                return reports, wait
            report = flush_batch(
                rt.engine,
                planhat,
                rt.limiter,
                connection=connection,
                model=model,
                budget=budget,
                policy=policy,
                hooks=prepare_hooks(model),
                memo=memo,
            )
            # Deletes are one call each (no bulk delete): the turns of those beyond the
            # batch's first call are taken after, as far as any are left.
            for _ in range(report.delete_calls - (0 if report.sent else 1)):
                rt.flush_pacer.try_acquire(budget)
            if report.sent or report.dropped or report.deferred or report.deleted:
                reports.append(report)
            if report.retry_in is not None or not report.full:
                break
        if report.stopped:
            break  # every model would wait alike, and children must not pass parents
    return reports, None


def run_sweep(rt: Runtime, lost_after: float | None = None) -> tuple[int, int]:
    """Re-send what the broker lost: pending events whose task vanished, and connections
    with due outbox rows. Returns (events re-sent, flushes asked)."""
    now = utcnow()
    if lost_after is None:
        lost_after = rt.config.lost_after
    with session_scope(rt.engine) as session:
        lost = lost_events(session, lost_after=lost_after)
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
        writing_back = connections_due(session, now)
    if lost:
        log.info("sweep.resend", events=len(lost))
        submit(rt, lost)
    for connection in connections:
        rt.dispatcher.flush(connection, 0.0)
    for connection in writing_back:
        rt.dispatcher.write_back(connection, 0.0)
    return len(lost), len(connections)


def run_prune(rt: Runtime) -> Pruned | None:
    """Delete what the retention (``retention_days``) no longer keeps; None when it is off
    or another prune is running."""
    days = rt.config.retention_days
    if days <= 0:
        return None
    with rt.locks.hold("prune", ttl=3600.0) as got:
        if not got:
            return None
        pruned = prune(rt.engine, older_than=timedelta(days=days))
    log.info("prune.done", retention_days=days, inbox_events=pruned.inbox_events,
             dead_letters=pruned.dead_letters,
             dead_letters_kept=pruned.dead_letters_kept)  # fmt: skip
    return pruned


def run_poll(rt: Runtime, apis: SourceApis) -> int:
    """Poll the events API of every source a connection has an API key for."""
    new = 0
    connections = rt.clients.connections
    for name in connections.names():
        try:
            tenant = connections.get(name)
        except LockedConnectionError:  # logged by Connections; the others still poll
            continue
        if tenant is None:
            continue
        for feed, client in feeds(tenant, apis):
            try:
                with client:
                    new += poll(rt.engine, name, feed, client, rt.dispatcher.ingest)
            except Exception as error:  # the next poll tries again from the same cursor
                log.warning("poll.failed", source=feed.source, connection=name, error=str(error))
    return new
