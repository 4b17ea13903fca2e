"""Celery: the app, its queues and thin tasks that call ``worker.runtime.jobs``.

Tasks take ids and reload rows (nothing but ids crosses the broker). JSON only;
``acks_late`` with ``task_reject_on_worker_lost`` so a killed worker's task is redelivered;
prefetch 1. No countdown is longer than ``MAX_COUNTDOWN`` (far below the broker's
visibility timeout): longer waits live in the database as ``next_attempt_at`` and are
found by the sweeper, which beat runs every ``PLANHAT_SYNC_SWEEP_INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence

import redis
from celery import Celery
from celery.schedules import crontab
from celery.signals import setup_logging
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline
from sqlalchemy import Engine

from state.connections import Connections
from state.crypto import secret_box
from state.db import make_engine
from worker.runtime import logs
from worker.runtime.caches import PlanhatClients
from worker.runtime.jobs import (
    MAX_COUNTDOWN,
    RedisLocks,
    Runtime,
    run_flush,
    run_ingest_queue,
    run_poll,
    run_prune,
    run_sweep,
)
from worker.runtime.ratelimit import RedisRateLimiter, WriteLimiters
from worker.runtime.settings import EngineSettings, Settings
from worker.runtime.windows import RedisWindows
from worker.runtime.write_back_jobs import run_reconcile, run_write_back

INGEST_QUEUE = "phs:ingest-queue"
# Slot 0's flag is the one the receiver raises; slot n > 0 is "phs:ingest-scheduled:n".
INGEST_SCHEDULED = "phs:ingest-scheduled"
INGEST_BATCH = 500  # the most ids one take hands out
# The fewest: a long queue is shared between the running tasks in batches of at least one
# transaction (INGEST_CHUNK), so no task sits idle while another holds 500 ids.
INGEST_MIN_BATCH = 50
# How long a "a batch task is scheduled or running" flag lives without a refresh: the
# longest a queued id waits if the task holding it died (its worker killed, or the send
# of the task failed). A running task refreshes it at every batch.
INGEST_FLAG_MS = 10_000
# How long a task keeps looking at an empty queue before it stops: at a steady trickle
# one task takes events as they come, instead of one Celery task started per event.
INGEST_LINGER = 0.2
VISIBILITY_TIMEOUT = 3600  # seconds; MAX_COUNTDOWN stays far below it
# The daily prune, at a fixed time (UTC) rather than every 24 h: beat keeps its schedule in
# a temporary file, so an interval would start again at every restart, and a beat that is
# restarted more often than daily (each deploy) would never prune.
PRUNE_AT = crontab(hour=3, minute=17)


# A flush is asked for when it should run; one is sent unless one is already due no later
# (give or take FLUSH_SLACK_MS). The key holds that due time (Redis's clock, ms) and
# expires on its own, so a lost flush message blocks nothing for long. A flush asked for
# sooner than the scheduled one is sent too: the later one then finds less to do.
# KEYS[1]: the connection's key; ARGV: delay ms, hold ms past the due time, slack ms.
SCHEDULE_FLUSH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = now + tonumber(ARGV[1])
local scheduled = tonumber(redis.call('GET', KEYS[1]))
if scheduled and scheduled <= due + tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], due, 'PX', tonumber(ARGV[1]) + tonumber(ARGV[2]))
return 1
"""
FLUSH_HOLD_MS = 30_000
FLUSH_SLACK = 50  # ms


def make_celery(settings: Settings, config: EngineSettings) -> Celery:
    app = Celery("planhat_sync", broker=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="ingest",
        task_routes={
            "planhat_sync.ingest_batch": {"queue": "ingest"},
            "planhat_sync.flush": {"queue": "flush"},
            # Writing back to sources is the reverse path's flush: on the same queue.
            "planhat_sync.write_back": {"queue": "flush"},
            # Periodic jobs (the sweeper, the pollers) share the poll queue.
            "planhat_sync.sweep": {"queue": "poll"},
            "planhat_sync.poll": {"queue": "poll"},
            "planhat_sync.prune": {"queue": "poll"},
        },
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True,
        # Our logging, not Celery's (``_our_logging`` below): Celery would otherwise wrap
        # stderr and relabel every line of ours WARNING ("WARNING/MainProcess] ... [info").
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        beat_schedule={
            "sweep": {"task": "planhat_sync.sweep", "schedule": config.sweep_interval},
            "poll": {"task": "planhat_sync.poll", "schedule": config.poll_interval},
            # Always scheduled: the worker's PLANHAT_SYNC_RETENTION_DAYS decides (0: off).
            "prune": {"task": "planhat_sync.prune", "schedule": PRUNE_AT},
        },
    )
    return app


settings = Settings()
config = EngineSettings()
app = make_celery(settings, config)


@setup_logging.connect
def _our_logging(loglevel: int | str | None = None, **_: object) -> None:
    """Celery skips its own logging set-up when this signal has a receiver (and then never
    redirects stdout and stderr): its lines and ours go out in PLANHAT_SYNC_LOG_FORMAT,
    each at its own level; Celery's at ``--loglevel`` and above."""
    logs.configure(settings.planhat_sync_log_level, settings.planhat_sync_log_format)
    logs.route_stdlib(loglevel or logging.WARNING, settings.planhat_sync_log_format)


def _flag(slot: int) -> str:
    return INGEST_SCHEDULED if slot == 0 else f"{INGEST_SCHEDULED}:{slot}"


def _queue(pipe: Pipeline | AsyncPipeline, inbox_ids: Sequence[int]) -> None:
    """The enqueue protocol, in one round trip: push the ids, and raise slot 0's "a batch
    task is scheduled" flag unless it is up. Its second answer says whether the caller
    raised it, and so must schedule the task. Fills a sync or an asyncio pipeline alike
    (both buffer commands until ``execute``)."""
    pipe.rpush(INGEST_QUEUE, *inbox_ids)
    pipe.set(INGEST_SCHEDULED, 1, nx=True, px=INGEST_FLAG_MS)


# One atomic step of a running ingest task (slot ARGV[1], flag KEYS[2]), so no id pushed
# meanwhile can be missed:
# - take ceil(waiting / slots) ids, between ARGV[3] and ARGV[4]: a long queue is shared
#   between the tasks instead of the first one taking 500 while the next finds none;
# - some taken: refresh this task's flag, and if a full batch is still waiting, raise
#   the first free flag of slots 1..n-1 (returned: its task must be sent);
# - none taken and ARGV[5] == "1": drop this task's flag. Nothing runs between the empty
#   pop and the drop, so an id pushed before it is taken and one pushed after it finds
#   slot 0's flag down (when this is slot 0) and schedules a task. Slots n > 0 are never
#   what the receiver relies on: slot 0's protocol alone strands no id (the proof of the
#   one-task design, unchanged); the other slots only add hands.
# Returns {ids, slot raised or -1}.
TAKE = """
local waiting = redis.call('LLEN', KEYS[1])
local slots = tonumber(ARGV[2])
local size = math.max(tonumber(ARGV[3]), math.min(tonumber(ARGV[4]),
    math.ceil(waiting / slots)))
local ids = {}
if waiting > 0 then ids = redis.call('LPOP', KEYS[1], size) end
local raised = -1
if #ids > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  if waiting - #ids >= tonumber(ARGV[4]) then
    for n = 1, slots - 1 do
      if n ~= tonumber(ARGV[1]) and
         redis.call('SET', KEYS[3] .. ':' .. n, 1, 'NX', 'PX', ARGV[6]) then
        raised = n
        break
      end
    end
  end
elseif ARGV[5] == '1' then
  redis.call('DEL', KEYS[2])
end
return {ids, raised}
"""


class CeleryDispatcher:
    """Sends jobs through the broker; one scheduled flush per connection at a time.

    Events go on a Redis list, one cheap RPUSH each on the receiver's hot path, and up to
    ``slots`` ``planhat_sync.ingest_batch`` tasks take them in batches, each under its own
    flag: the receiver starts slot 0's task, a running task starts another while a full
    batch is still waiting. LPOP hands each id to one task only. ``aclient`` (asyncio)
    serves the receiver's event loop, ``client`` everything else."""

    def __init__(
        self, celery: Celery, client: redis.Redis, aclient: AsyncRedis, slots: int = 1
    ) -> None:
        self._celery = celery
        self._redis = client
        self._aredis = aclient
        self._slots = max(1, slots)
        self._take = client.register_script(TAKE)
        self._schedule_flush = client.register_script(SCHEDULE_FLUSH)

    def ingest(self, inbox_ids: Sequence[int]) -> None:
        if not inbox_ids:
            return
        pipe = self._redis.pipeline(transaction=False)
        _queue(pipe, inbox_ids)
        _, scheduled_now = pipe.execute()
        if scheduled_now:
            self._schedule_batch(0)

    async def ingest_async(self, inbox_ids: Sequence[int]) -> None:
        if not inbox_ids:
            return
        pipe = self._aredis.pipeline(transaction=False)
        _queue(pipe, inbox_ids)
        _, scheduled_now = await pipe.execute()
        if scheduled_now:  # rare (once per batch): Celery's send is blocking, so on a thread
            await asyncio.to_thread(self._schedule_batch, 0)

    def _schedule_batch(self, slot: int) -> None:
        self._celery.send_task("planhat_sync.ingest_batch", (slot,))

    def take_ingest_batch(self, size: int, slot: int = 0, release: bool = True) -> list[int]:
        """Up to ``size`` ids for the task of ``slot`` (fewer when other tasks can share a
        long queue). While it takes some its flag stays set, so the receiver schedules no
        second task for every event; [] once none is left, and then (``release``) its flag
        is down: the task must stop."""
        ids, raised = self._take(
            keys=[INGEST_QUEUE, _flag(slot), INGEST_SCHEDULED],
            args=[slot, self._slots, min(size, INGEST_MIN_BATCH), size,
                  int(release), INGEST_FLAG_MS],
        )  # fmt: skip
        if raised >= 0:
            self._schedule_batch(int(raised))
        return [int(i) for i in ids]

    async def ready(self) -> None:
        await self._aredis.ping()

    def flush(self, connection: str, delay: float) -> None:
        delay = min(MAX_COUNTDOWN, max(0.0, delay))
        key = f"phs:flush-scheduled:{connection}"
        if self._schedule_flush(keys=[key], args=[int(delay * 1000), FLUSH_HOLD_MS, FLUSH_SLACK]):
            self._celery.send_task("planhat_sync.flush", (connection,), countdown=delay)

    def flush_started(self, connection: str) -> None:
        self._redis.delete(f"phs:flush-scheduled:{connection}")

    def write_back(self, connection: str, delay: float) -> None:
        delay = min(MAX_COUNTDOWN, max(0.0, delay))
        key = f"phs:write-back-scheduled:{connection}"
        if self._schedule_flush(keys=[key], args=[int(delay * 1000), FLUSH_HOLD_MS, FLUSH_SLACK]):
            self._celery.send_task("planhat_sync.write_back", (connection,), countdown=delay)

    def write_back_started(self, connection: str) -> None:
        self._redis.delete(f"phs:write-back-scheduled:{connection}")


def connections(engine: Engine) -> Connections:
    """Tenants from the database (secrets opened with PLANHAT_SYNC_SECRET_KEY) and the
    ``default`` one from the environment."""
    return Connections(engine, box=secret_box, default=settings.default_tenant)


_runtime: tuple[int, Runtime] | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """This process's runtime, built after fork (each prefork child gets its own pools)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None or _runtime[0] != os.getpid():
            client = redis.Redis.from_url(settings.redis_url)
            aclient = AsyncRedis.from_url(settings.redis_url)  # unused by workers: never connects
            engine = make_engine(settings.database_url)
            _runtime = (
                os.getpid(),
                Runtime(
                    engine=engine,
                    limiter=RedisRateLimiter(
                        client, rate_per_minute=config.rate_per_minute, burst=config.burst
                    ),
                    pacer=RedisRateLimiter(
                        client, rate_per_minute=config.flush_rate(), burst=1, prefix="phs:pace"
                    ),
                    dispatcher=CeleryDispatcher(app, client, aclient, config.ingest_tasks),
                    write_limiters=WriteLimiters(
                        lambda rate, burst: RedisRateLimiter(
                            client, rate_per_minute=rate, burst=burst, prefix="phs:wb"
                        ),
                        RedisWindows(client),
                    ),
                    locks=RedisLocks(client),
                    clients=PlanhatClients(connections(engine)),
                    config=config,
                    apis=settings.source_apis(),
                ),
            )
        return _runtime[1]


@app.task(name="planhat_sync.ingest_batch")
def ingest_batch(slot: int = 0) -> None:  # no argument: a message sent by an older version
    run_ingest_queue(runtime(), INGEST_BATCH, slot, INGEST_LINGER)


@app.task(name="planhat_sync.flush")
def flush_connection(connection: str) -> None:
    run_flush(runtime(), connection)


@app.task(name="planhat_sync.write_back")
def write_back(connection: str) -> None:
    run_write_back(runtime(), connection)


@app.task(name="planhat_sync.sweep")
def sweep() -> None:
    run_sweep(runtime())


@app.task(name="planhat_sync.poll")
def poll() -> None:
    run_poll(runtime(), settings.source_apis())
    run_reconcile(runtime())  # what Planhat's automations missed


@app.task(name="planhat_sync.prune")
def prune() -> None:
    run_prune(runtime())
