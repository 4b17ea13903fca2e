"""What every two-way harness on the embedded engine (SQLite) shares: the engine with a
receiver on a real socket, the Planhat sandbox whose Automations POST their hints to that
receiver, the tenant connecting them, and the looks into the engine's tables that tell a
test when nothing moves any more. ``tests/engine/two_way.py`` (standard webhooks) and
``tests/engine/helpdesk_harness.py`` (Zendesk, Intercom) build on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cryptography.fernet import Fernet
from sqlalchemy import Engine, func
from sqlmodel import SQLModel, select

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox, BackgroundServer
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import migrate, session_scope
from state.inbox import has_pending
from state.tables import DeadLetter, InboxEvent, Link, OutboxItem, WriteBackItem
from tests import stand_in_http
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.poll import SourceApis
from worker.intake.receiver import create_web_app
from worker.runtime.embedded import LocalDispatcher, embedded_runtime
from worker.runtime.jobs import Runtime
from worker.runtime.metrics_state import add_metrics_route
from worker.runtime.ratelimit import LocalRateLimiter, WriteLimiters
from worker.runtime.settings import EngineSettings

PLANHAT_SECRET = "automation-secret-of-the-admin"
FAST = EngineSettings(
    flush_linger=0.05,
    sweep_interval=1.0,
    rate_per_minute=1e6,
    burst=10**5,
    backoff_base=0.05,
    backoff_cap=0.2,
    max_attempts=4,
)
# A source's write budget left to its stand-in to enforce (its limits, its 429s).
UNPACED = LocalRateLimiter(rate_per_minute=1e6, burst=10**5)


@dataclass
class EngineHarness:
    """The engine, its receiver and the Planhat sandbox, as a test sees them."""

    runtime: Runtime
    dispatcher: LocalDispatcher
    receiver: BackgroundServer
    sandbox: BackgroundSandbox
    planhat: PlanhatClient

    # How long ``drain`` waits by default, how often it looks, and what its failure names.
    drain_timeout: ClassVar[float] = 30
    drain_pause: ClassVar[float] = 0.05
    drained_what: ClassVar[str] = "the engine"

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    def planhat_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = stand_in_http.get(f"{self.sandbox.url}/_sandbox/stats").json()
        return stats

    def rows(self, table: type[SQLModel]) -> list[Any]:
        with session_scope(self.engine) as session:
            return list(session.exec(select(table)))

    def links(self) -> dict[str, Link]:
        return {link.key: link for link in self.rows(Link)}

    def letters(self) -> list[DeadLetter]:
        return list(self.rows(DeadLetter))

    def events(self, source: str) -> list[InboxEvent]:
        with session_scope(self.engine) as session:
            query = select(InboxEvent).where(InboxEvent.source == source)
            return list(session.exec(query))

    def deliveries_pending(self) -> bool:
        """Whether a stand-in still has a webhook on its way to our receiver."""
        return bool(self.planhat_stats()["automations"]["pending"] > 0)

    def busy(self) -> bool:
        with session_scope(self.engine) as session:
            waiting = has_pending(session, "default")
            for table in (OutboxItem, WriteBackItem):
                waiting = waiting or bool(
                    session.exec(select(func.count()).select_from(table)).one()
                )
        pending = self.deliveries_pending()
        return waiting or pending or not self.dispatcher.idle()

    def drain(self, timeout: float | None = None) -> None:
        """Until nothing moves: no webhook on its way, nothing pending or queued, idle,
        three looks in a row (a hint may arrive just after a flush settles)."""
        deadline = time.monotonic() + (self.drain_timeout if timeout is None else timeout)
        quiet = 0
        while quiet < 3:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.drained_what} did not drain")
            quiet = 0 if self.busy() else quiet + 1
            time.sleep(self.drain_pause)


@dataclass(frozen=True)
class RunningEngine:
    runtime: Runtime
    dispatcher: LocalDispatcher
    receiver: BackgroundServer
    sandbox: BackgroundSandbox
    planhat: PlanhatClient

    def parts(self) -> dict[str, Any]:
        """The fields an ``EngineHarness`` is made of."""
        return {
            "runtime": self.runtime,
            "dispatcher": self.dispatcher,
            "receiver": self.receiver,
            "sandbox": self.sandbox,
            "planhat": self.planhat,
        }


@contextmanager
def running_engine(
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
    tmp_path: Path,
    *,
    config: EngineSettings,
    apis: SourceApis,
    automations: Iterable[str],
    secrets: Mapping[str, str],
    options: Mapping[str, str],
    sandbox_config: Mapping[str, Any] | None = None,
    paced: bool = True,
) -> Iterator[RunningEngine]:
    """The embedded engine with a receiver on a socket, and the Planhat sandbox whose
    Automations on ``automations`` POST to that receiver (bearer ``PLANHAT_SECRET``); the
    tenant ``default`` holds ``secrets`` and ``options``. ``paced=False``: writes back at
    once, the sources' budgets left to their stand-ins."""
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    box = SecretBox(Fernet.generate_key().decode())
    tenant: list[Tenant] = []  # filled once the sandbox's address is known

    def connections(engine: Engine) -> Connections:
        return Connections(engine, box=lambda: box, default=lambda: tenant[0])

    runtime, dispatcher = embedded_runtime(url, connections, config, apis)
    if not paced:
        runtime.write_limiters = WriteLimiters(lambda rate, burst: UNPACED)
    app = create_web_app(
        connections=connections(runtime.engine),
        inbox=Inbox(ThreadedWriter(runtime.engine), dispatcher),
    )
    add_metrics_route(app, runtime.engine)  # as ``planhat-sync dev`` serves it
    receiver = BackgroundServer(app)
    hook = f"{receiver.url}/webhooks/default/planhat"
    given: dict[str, Any] = {"rate_per_minute": 1e9, "burst": 10**6, **(sandbox_config or {})}
    sandbox = start_sandbox(
        SandboxConfig(
            automations=dict.fromkeys(automations, hook),
            automation_secret=PLANHAT_SECRET,
            **given,
        )
    )
    tenant.append(
        Tenant(
            name="default",
            planhat_base_url=sandbox.url,
            planhat_token="sync-token",
            secrets=dict(secrets),
            options=dict(options),
        )
    )
    receiver.start()
    dispatcher.start()
    planhat = PlanhatClient("test-token", base_url=sandbox.url)
    try:
        yield RunningEngine(runtime, dispatcher, receiver, sandbox, planhat)
    finally:
        planhat.close()
        dispatcher.stop()
        receiver.stop()
        runtime.engine.dispose()
