"""Real processes for end-to-end engine tests: a Redis of our own, workers, beat.

Everything runs on 127.0.0.1; every process is stopped (or killed) by the test that
started it, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from cryptography.fernet import Fernet
from sqlalchemy import func
from sqlmodel import select

from state.db import make_engine, session_scope
from state.tables import DeadLetter, InboxEvent, OutboxItem
from tests.engine.services import fresh_postgres_database, service_missing
from worker.intake.inbox import Inbox, writer_for
from worker.runtime.settings import EngineSettings, Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class RedisServer:
    """A redis-server on a spare port that keeps nothing on disk, so a restart empties it."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            service_missing("redis-server", FileNotFoundError("redis-server"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), timeout=10, what="redis-server to start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


def postgres_database() -> AbstractContextManager[str]:
    """A fresh, migrated PostgreSQL database, dropped afterwards."""
    return fresh_postgres_database("phs_e2e")


@dataclass
class Deployment:
    """Workers and beat as real processes, pointed at one database, Redis and Planhat."""

    database_url: str
    redis: RedisServer
    planhat_url: str
    logs: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    secret_key: str = field(default_factory=lambda: Fernet.generate_key().decode())

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("PLANHAT", "CELERY"))}
        return {
            **keep,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "PLANHAT_BASE_URL": self.planhat_url,
            "PLANHAT_SYNC_LOG_LEVEL": "info",
            "PLANHAT_SYNC_SECRET_KEY": self.secret_key,
            "PLANHAT_SYNC_SWEEP_INTERVAL": "1",
            "PLANHAT_SYNC_LOST_AFTER": "5",
            "PLANHAT_SYNC_LEASE_SECONDS": "5",
            # A linger longer than ingesting the tests' 5,000 events: what they check is
            # coalescing (about one call per model), not latency (bench/bench_steady.py).
            "PLANHAT_SYNC_FLUSH_LINGER": "10",
            **self.env_extra,
        }

    def start(self, name: str, *args: str) -> None:
        command = [str(Path(sys.executable).with_name("planhat-sync")), *args]
        log = (self.logs / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            command, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_worker(self, name: str) -> None:
        self.start(
            name, "worker", "--concurrency", "1", "--loglevel", "warning", f"--hostname={name}@%h"
        )

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str) -> None:
        """SIGKILL the process and its children: no cleanup, no goodbye."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        """SIGTERM to every process first, then each waited for (SIGKILL after 15 s): they
        shut down side by side, not one after another."""
        stopping = [self.processes.pop(name) for name in list(self.processes)]
        for process in stopping:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in stopping:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@contextmanager
def fresh_deployment(
    redis: RedisServer, planhat_url: str, logs: Path, env_extra: dict[str, str]
) -> Iterator[Deployment]:
    """A Deployment (nothing started yet) on a fresh, migrated PostgreSQL database; its
    processes are stopped and the database dropped afterwards."""
    with postgres_database() as database_url:
        deployment = Deployment(
            database_url=database_url,
            redis=redis,
            planhat_url=planhat_url,
            logs=logs,
            env_extra=env_extra,
        )
        try:
            yield deployment
        finally:
            deployment.stop_all()


def send_events(database_url: str, redis_url: str, events: list[tuple[str, str, bytes]]) -> int:
    """Store (connection, event_id, body) standard events and hand them to the workers the
    way the production receiver does (its writer and the dispatcher's enqueue, without the
    HTTP in front); returns how many were new (a repeated event id is stored once)."""
    return asyncio.run(_send(database_url, redis_url, events))


async def _send(database_url: str, redis_url: str, events: list[tuple[str, str, bytes]]) -> int:
    from worker.runtime.tasks import CeleryDispatcher, make_celery

    celery = make_celery(Settings(database_url=database_url, redis_url=redis_url), EngineSettings())
    client, aclient = redis.Redis.from_url(redis_url), redis.asyncio.Redis.from_url(redis_url)
    engine = make_engine(database_url)
    inbox = Inbox(writer_for(engine), CeleryDispatcher(celery, client, aclient))
    await inbox.open()
    try:
        stored = [await inbox.store(c, "standard", event_id, body) for c, event_id, body in events]
    finally:
        await inbox.close()
        await aclient.aclose()
        client.close()
        engine.dispose()
        celery.close()
    return sum(inbox_id is not None for inbox_id in stored)


def engine_state(database_url: str) -> dict[str, int]:
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            pending = session.exec(
                select(func.count()).select_from(InboxEvent).where(InboxEvent.status == "pending")
            ).one()
            outbox = session.exec(select(func.count()).select_from(OutboxItem)).one()
            dead = session.exec(select(func.count()).select_from(DeadLetter)).one()
    finally:
        engine.dispose()
    return {"pending": pending, "outbox": outbox, "dead": dead}


def drained(database_url: str) -> bool:
    state = engine_state(database_url)
    return state["pending"] == 0 and state["outbox"] == 0


def standard(model: str, key: str, version: int, fields: dict[str, Any]) -> bytes:
    return json.dumps(
        {"model": model, "key": {"sourceId": key}, "fields": fields, "version": version}
    ).encode()


def require_services() -> None:
    if not os.path.exists(str(Path(sys.executable).with_name("planhat-sync"))):
        pytest.skip("planhat-sync is not installed in this environment")
