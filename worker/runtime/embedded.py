"""The embedded engine: the same jobs as Celery runs, on threads of this process.

For ``planhat-sync dev``: no Redis. An in-process queue feeds ingest threads, flushes are
timers (one pending per connection), a sweeper thread re-sends what a restart left behind.
The inbox in SQLite stays the truth: killed and started again, the first sweep picks up
every event that was acknowledged but not yet ingested.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import structlog

from state.connections import Connections
from state.db import make_engine
from worker.intake.poll import SourceApis
from worker.runtime.caches import PlanhatClients
from worker.runtime.jobs import (
    PRUNE_EVERY,
    LocalLocks,
    Runtime,
    run_flush,
    run_ingest_queue,
    run_poll,
    run_prune,
    run_sweep,
)
from worker.runtime.ratelimit import LocalRateLimiter
from worker.runtime.settings import EngineSettings
from worker.runtime.write_back_jobs import run_reconcile, run_write_back

log = structlog.get_logger(__name__)
INGEST_BATCH = 200
FLUSH_SLACK = 0.05  # seconds: a flush due this much later than asked is soon enough
BURST_RECHECK = 0.25  # seconds: how often a held flush looks whether the burst is over
ARRIVAL_WINDOW = 1.0  # seconds of arrivals the burst rate is counted over
RATE_SPAN = 0.25  # seconds: the shortest span a rate is counted over


class LocalDispatcher:
    """The ``Dispatcher`` of the embedded engine: the same enqueue protocol as Celery's
    (ids queued, one ingest job taking them in batches), with threads for workers."""

    def __init__(self, runtime: Callable[[], Runtime], ingest_threads: int = 2) -> None:
        self._runtime = runtime
        self._queue: deque[int] = deque()
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)
        # One pending flush per connection: its timer and when it fires (monotonic).
        self._timers: dict[str, tuple[threading.Timer, float]] = {}
        # The same for write-back runs (the reverse path's flush).
        self._write_timers: dict[str, tuple[threading.Timer, float]] = {}
        self._writing = 0
        self._threads = [
            threading.Thread(target=self._ingest_loop, name=f"ingest-{n}", daemon=True)
            for n in range(ingest_threads)
        ]
        self._stopping = False
        self._ingesting = 0
        self._flushing = 0
        # Events handed in over the last ARRIVAL_WINDOW (when, how many), and since when
        # each connection's flush has been held for a burst.
        self._arrivals: deque[tuple[float, int]] = deque()
        self._arrived = 0
        self._held_since: dict[str, float] = {}
        self._ingest_held_since: float | None = None  # see _ingest_held_for_burst
        self._burst_backlog = False  # events a burst held are still queued for ingest

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._queued.notify_all()
            for timer, _ in [*self._timers.values(), *self._write_timers.values()]:
                timer.cancel()

    def ingest(self, inbox_ids: Sequence[int]) -> None:
        with self._lock:
            self._queue.extend(inbox_ids)
            self._queued.notify()
            self._arrivals.append((time.monotonic(), len(inbox_ids)))
            self._arrived += len(inbox_ids)

    async def ingest_async(self, inbox_ids: Sequence[int]) -> None:
        self.ingest(inbox_ids)  # an append under a lock held for no longer: never blocks

    def take_ingest_batch(self, size: int, slot: int = 0, release: bool = True) -> list[int]:
        # One in-process queue for every ingest thread: no flag to keep or drop. A burst
        # starting while a job runs ends the job (nothing taken); its thread then waits.
        with self._lock:
            if self._ingest_held_for_burst(self._runtime().config):
                return []
            return [self._queue.popleft() for _ in range(min(size, len(self._queue)))]

    async def ready(self) -> None:
        if self._stopping:
            raise RuntimeError("the embedded engine is stopping")

    def flush(self, connection: str, delay: float) -> None:
        due = time.monotonic() + delay
        with self._lock:
            if self._stopping:
                return
            pending = self._timers.get(connection)
            if pending is not None:
                if pending[1] <= due + FLUSH_SLACK:
                    return  # one will run soon enough
                pending[0].cancel()  # asked for sooner: that one is replaced
            timer = threading.Timer(delay, self._flush, (connection,))
            timer.daemon = True
            self._timers[connection] = (timer, due)
            timer.start()

    def flush_started(self, connection: str) -> None:
        with self._lock:
            self._timers.pop(connection, None)

    def write_back(self, connection: str, delay: float) -> None:
        due = time.monotonic() + delay
        with self._lock:
            if self._stopping:
                return
            pending = self._write_timers.get(connection)
            if pending is not None:
                if pending[1] <= due + FLUSH_SLACK:
                    return
                pending[0].cancel()
            timer = threading.Timer(delay, self._write_back, (connection,))
            timer.daemon = True
            self._write_timers[connection] = (timer, due)
            timer.start()

    def write_back_started(self, connection: str) -> None:
        with self._lock:
            self._write_timers.pop(connection, None)

    def idle(self) -> bool:
        """Nothing queued, scheduled or running (for tests and the dev demo)."""
        with self._lock:
            busy = self._queue or self._ingesting or self._timers or self._flushing
            return not (busy or self._write_timers or self._writing)

    def _ingest_loop(self) -> None:
        while True:
            with self._lock:
                self._queued.wait_for(lambda: bool(self._queue) or self._stopping)
                if self._stopping:
                    return
                if self._ingest_held_for_burst(self._runtime().config):
                    self._queued.wait(BURST_RECHECK)
                    continue
                # Counted as running before the queue can empty: idle() never sees a gap.
                self._ingesting += 1
            try:
                run_ingest_queue(self._runtime(), INGEST_BATCH)
            except Exception:  # failed events stay pending: the sweeper retries them
                log.exception("ingest.failed")
            finally:
                with self._lock:
                    self._ingesting -= 1

    def _bursting(self, config: EngineSettings) -> bool:
        """Whether webhooks arrive faster than ``embedded_burst_rate``. Called with the lock
        held."""
        now = time.monotonic()
        while self._arrivals and self._arrivals[0][0] < now - ARRIVAL_WINDOW:
            self._arrived -= self._arrivals.popleft()[1]
        # Over the part of the window events came in (at least RATE_SPAN): a burst's first
        # linger already shows its rate, a lone webhook does not look like one.
        span = max(now - self._arrivals[0][0], RATE_SPAN) if self._arrivals else ARRIVAL_WINDOW
        return not self._stopping and self._arrived / span >= config.embedded_burst_rate

    def _ingest_held_for_burst(self, config: EngineSettings) -> bool:
        """Whether ingest waits because a burst is coming in: the events are committed in
        the inbox already, and ingest's SQLite writes and CPU, beside the receiver in this
        one process, cost its p99 (57.0 ms with ingest running through a 10,000-event
        burst; docs/benchmarks.md). Held at most ``embedded_burst_wait`` seconds; after
        that it runs until the burst is over (a long stream is only ever delayed by the
        wait once). Called with the lock held."""
        if not self._bursting(config):
            self._ingest_held_since = None
            return False
        now = time.monotonic()
        if self._ingest_held_since is None:
            self._ingest_held_since = now
        self._burst_backlog = True
        return now - self._ingest_held_since < config.embedded_burst_wait

    def _held_for_burst(self, connection: str, config: EngineSettings) -> bool:
        """Whether this flush waits (and is asked for again) because webhooks arrive faster
        than ``embedded_burst_rate``, or ingest is still taking what a burst left. One
        process serves the receiver, ingest and flush: a flush while a burst comes in
        (encoding and settling up to 500 records a model, holding SQLite's write lock) cost
        the receiver's p99 (85.9 ms against 44.7 ms with no flush during the burst;
        docs/benchmarks.md). Held at most ``embedded_burst_wait`` seconds, then it goes: a
        steady stream is never starved.
        Called with the lock held."""
        now = time.monotonic()
        # After a burst, while ingest catches up with what it held, a flush would send
        # part of the batch it is about to fill: it waits for that too.
        self._burst_backlog = self._burst_backlog and bool(self._queue)
        if not (self._bursting(config) or self._burst_backlog):
            self._held_since.pop(connection, None)
            return False
        since = self._held_since.setdefault(connection, now)
        if now - since >= config.embedded_burst_wait:
            self._held_since.pop(connection, None)
            return False
        timer = threading.Timer(BURST_RECHECK, self._flush, (connection,))
        timer.daemon = True
        self._timers[connection] = (timer, now + BURST_RECHECK)
        timer.start()
        return True

    def _flush(self, connection: str) -> None:
        runtime = self._runtime()
        with self._lock:
            if self._held_for_burst(connection, runtime.config):
                return
            self._flushing += 1
        try:
            run_flush(runtime, connection)
        except Exception:  # rows stay in the outbox: the sweeper asks again
            log.exception("flush.failed", connection=connection)
        finally:
            with self._lock:
                self._flushing -= 1
                # Forget this timer if a failure left it scheduled, never the next one:
                # run_flush schedules the next itself while changes keep coming, and
                # forgetting that one let every ingest batch start another chain of
                # timers (measured: ~100 flush threads a second, each taking the write
                # lock to find the outbox still busy).
                pending = self._timers.get(connection)
                if pending is not None and pending[0] is threading.current_thread():
                    del self._timers[connection]

    def _write_back(self, connection: str) -> None:
        with self._lock:
            self._writing += 1
        try:
            run_write_back(self._runtime(), connection)
        except Exception:  # rows stay queued: the sweeper asks again
            log.exception("write_back.failed", connection=connection)
        finally:
            with self._lock:
                self._writing -= 1
                pending = self._write_timers.get(connection)
                if pending is not None and pending[0] is threading.current_thread():
                    del self._write_timers[connection]


class Sweeper(threading.Thread):
    """Beat's work in process: sweeps, polls of source APIs (every feed a connection has
    credentials for; none when ``apis`` is None) and the daily prune (first at the first
    tick: a process restarted more often than daily still prunes)."""

    def __init__(self, runtime: Runtime, interval: float, apis: SourceApis | None = None) -> None:
        super().__init__(name="sweeper", daemon=True)
        self._runtime = runtime
        self._interval = interval
        self._apis = apis
        self._halt = threading.Event()  # not _stop: Thread.join() calls its own _stop()

    def run(self) -> None:
        # First pass at start: whatever a previous run acknowledged but never finished.
        run_sweep(self._runtime, lost_after=0.0)
        last_poll = 0.0
        last_prune: float | None = None
        while not self._halt.wait(self._interval):
            try:
                run_sweep(self._runtime)
                due = time.monotonic() - last_poll >= self._runtime.config.poll_interval
                if self._apis and due:
                    last_poll = time.monotonic()
                    run_poll(self._runtime, self._apis)
                    run_reconcile(self._runtime)
            except Exception:
                log.exception("sweep.failed")
            if last_prune is None or time.monotonic() - last_prune >= PRUNE_EVERY:
                last_prune = time.monotonic()
                try:
                    run_prune(self._runtime)
                except Exception:  # tried again tomorrow; nothing depends on it meanwhile
                    log.exception("prune.failed")

    def stop(self) -> None:
        self._halt.set()


def embedded_runtime(
    database_url: str,
    connections: Callable[..., Connections],
    config: EngineSettings,
    apis: SourceApis | None = None,
) -> tuple[Runtime, LocalDispatcher]:
    engine = make_engine(database_url)
    holder: list[Runtime] = []
    dispatcher = LocalDispatcher(lambda: holder[0])
    runtime = Runtime(
        engine=engine,
        limiter=LocalRateLimiter(rate_per_minute=config.rate_per_minute, burst=config.burst),
        dispatcher=dispatcher,
        locks=LocalLocks(),
        clients=PlanhatClients(connections(engine)),
        config=config,
        apis=apis or SourceApis(),
    )
    holder.append(runtime)
    return runtime, dispatcher
