"""Shared fixtures: the Planhat sandbox over a real socket on this machine."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import redis
import structlog
from sqlalchemy import Engine
from sqlmodel import select

from connectors.planhat.client import PlanhatClient
from connectors.planhat.retry import RetryPolicy
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.db import make_engine, migrate, session_scope
from state.inbox import has_pending
from state.tables import OutboxItem
from tests import stand_in_http
from tests.engine.services import TEST_REDIS_URL, service_missing
from worker.runtime.embedded import LocalDispatcher

# Tests that are not about rate limits must never meet one.
UNLIMITED = SandboxConfig(rate_per_minute=1e9, burst=1_000_000)
# Fast retries for tests; the policy is a parameter, not a patch.
FAST_RETRY = RetryPolicy(attempts=8, base_delay=0.01, max_delay=0.2, max_rate_limit_wait=60)


@pytest.fixture(autouse=True)
def structlog_config_restored() -> Iterator[None]:
    """Every test starts from the logging the one before it found: a command run in a test
    configures structlog (at warning, say), and a later test capturing info lines would
    see none of them."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[BackgroundSandbox]:
    with BackgroundSandbox(UNLIMITED) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(shared_sandbox: BackgroundSandbox) -> BackgroundSandbox:
    """The session's sandbox, emptied (data and counters) for this test."""
    stand_in_http.post(f"{shared_sandbox.url}/_sandbox/reset").raise_for_status()
    return shared_sandbox


@pytest.fixture
def start_sandbox() -> Iterator[Callable[[SandboxConfig], BackgroundSandbox]]:
    """Start a sandbox of its own with a given configuration (stopped after the test)."""
    started: list[BackgroundSandbox] = []

    def start(config: SandboxConfig) -> BackgroundSandbox:
        sandbox = BackgroundSandbox(config).start()
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def client(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("test-token", base_url=sandbox.url, retry=FAST_RETRY) as planhat:
        yield planhat


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated state store on SQLite in the test's own folder."""
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def free_port_pair() -> int:
    """A free port whose next port is free too (``planhat-sync dev`` puts the sandbox on
    port + 1). Both are probed by binding, so a port the system hands out is not reused."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two consecutive free ports")


def sandbox_stats(sandbox: BackgroundSandbox) -> dict[str, object]:
    response = stand_in_http.get(f"{sandbox.url}/_sandbox/stats")
    response.raise_for_status()
    stats: dict[str, object] = response.json()
    return stats


def drain_embedded(
    engine: Engine,
    dispatcher: LocalDispatcher,
    connections: Sequence[str] = ("default",),
    timeout: float = 30,
) -> None:
    """Wait until the embedded engine has nothing left to do: no pending event on these
    connections, an empty outbox, an idle dispatcher."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(engine) as session:
            busy = any(has_pending(session, name) for name in connections)
            busy = busy or session.exec(select(OutboxItem)).first() is not None
        if not busy and dispatcher.idle():
            return
        time.sleep(0.05)
    raise AssertionError("the embedded engine did not drain")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """The test database of the machine's Redis, emptied before and after (skipped on a
    developer's machine when Redis is down, failed in CI)."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        service_missing("Redis", error)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
