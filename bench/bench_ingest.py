"""Benchmark: ingest alone, on PostgreSQL + Redis, with 1 or more worker processes.

    .venv/bin/python bench/bench_ingest.py --events 50000 --records 1000 --workers 1 2
    .venv/bin/python bench/bench_ingest.py --events 1000 --rate 100 --workers 2

Stores the events in the inbox first (no receiver: its rate would bound the measure), then
queues their ids as the receiver does and times the workers until no event is pending.
With ``--rate`` the ids are queued one at a time at that rate instead (a trickle). Prints
events/s and the workers' CPU per event. Flushes are held back (a long flush window and
no Planhat), so the workers only ingest. Everything is its own: a redis-server, a
PostgreSQL database, the worker processes.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

import redis
from bench_sync import events, start, stop  # bench/ is sys.path[0]
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import Engine, func, insert
from sqlmodel import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from state.db import make_engine, session_scope  # noqa: E402
from state.inbox import new_event  # noqa: E402
from state.tables import InboxEvent  # noqa: E402
from tests.engine.harness import RedisServer, postgres_database, wait_until  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(leaders: list[int]) -> float:
    """User + system CPU of every process in these process groups (a worker and its
    prefork children), as far as they have run."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in leaders:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def pending(engine: Engine) -> int:
    with session_scope(engine) as session:
        query = select(func.count()).select_from(InboxEvent).where(InboxEvent.status == "pending")
        return int(session.exec(query).one())


def run(count: int, records: int, workers: int, rate: float | None) -> None:
    logs = Path(tempfile.mkdtemp(prefix="phs-bench-ingest-"))
    server = RedisServer()
    server.start()
    processes = []
    try:
        with postgres_database() as database_url:
            engine = make_engine(database_url)
            rows = [
                new_event(connection="default", source="standard", event_id=event_id, body=body)
                for event_id, body, _ in events(count, records, "unused")
            ]
            with engine.begin() as connection:
                table = InboxEvent.__table__  # type: ignore[attr-defined]
                ids = [
                    row.id
                    for start_at in range(0, len(rows), 5000)
                    for row in connection.execute(
                        insert(table).returning(table.c.id), rows[start_at : start_at + 5000]
                    )
                ]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("PLANHAT", "DATABASE"))}
            env |= {
                "DATABASE_URL": database_url,
                "REDIS_URL": server.url,
                "PLANHAT_SYNC_LOG_LEVEL": "warning",
                "PLANHAT_BASE_URL": "http://127.0.0.1:9",
                "PLANHAT_SYNC_FLUSH_LINGER": "600",  # no flush while measuring
                "PLANHAT_SYNC_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            }
            os.environ["REDIS_URL"] = server.url  # read by worker.runtime.tasks on import
            from worker.runtime.settings import EngineSettings, Settings
            from worker.runtime.tasks import CeleryDispatcher, make_celery

            celery = make_celery(Settings(redis_url=server.url), EngineSettings())
            for n in range(workers):
                argv = ["worker", "--concurrency", "1", "--loglevel", "warning",
                        f"--hostname=ingest{n}@%h"]  # fmt: skip
                processes.append(start(argv, env, logs / f"worker{n}.log"))
            wait_until(lambda: len(celery.control.ping(timeout=0.5)) >= workers, timeout=60,
                       what="the workers")  # fmt: skip
            leaders = [process.pid for process in processes]
            dispatcher = CeleryDispatcher(
                celery, redis.Redis.from_url(server.url), AsyncRedis.from_url(server.url)
            )
            cpu_before = cpu_seconds(leaders)
            started = time.perf_counter()
            if rate:
                for n, inbox_id in enumerate(ids):
                    time.sleep(max(0.0, started + n / rate - time.perf_counter()))
                    dispatcher.ingest([inbox_id])
            else:
                for at in range(0, len(ids), 1000):  # as receivers push: many small pushes
                    dispatcher.ingest(ids[at : at + 1000])
            queued = time.perf_counter()
            wait_until(lambda: pending(engine) == 0, timeout=900, what="the ingest", every=0.05)
            finished = time.perf_counter()
            cpu = cpu_seconds(leaders) - cpu_before
            celery.close()
            engine.dispose()
    finally:
        stop(processes)
        server.stop()
    how = f"queued at {rate:g}/s" if rate else "queued at once"
    load = Path("/proc/loadavg").read_text().strip()
    print(
        f"ingest: {count} events over {records} records, {how}, {workers} worker(s) x 1; "
        f"logs in {logs}"
    )
    print(
        f"  {count / (finished - started):,.0f} events/s ({finished - started:.1f} s; "
        f"{finished - queued:.1f} s after the last was queued); "
        f"workers' CPU {cpu * 1000 / count:.2f} ms per event; load {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=1_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rate", type=float, default=None, help="queue ids at this rate")
    args = parser.parse_args()
    for workers in args.workers:
        run(args.events, args.records, workers, args.rate)


if __name__ == "__main__":
    main()
