"""Both directions on the embedded engine (SQLite): a receiver on a real socket, the
Planhat sandbox whose Automations POST their hints to that receiver, and a source that
writes back to a local fake receiver (``tests/outbound.py``).

    with two_way(start_sandbox, tmp_path, outbound=receiver.url) as sync:
        sync.send("tasks", "t-1", 1, {...})       # a signed standard webhook, in
        sync.drain()                              # until nothing moves any more
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import Engine, func
from sqlmodel import SQLModel, select

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox, BackgroundServer
from connectors.standard.verify import signed_headers
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import migrate, session_scope
from state.inbox import has_pending
from state.tables import DeadLetter, Link, OutboxItem, WriteBackItem
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.poll import SourceApis
from worker.intake.receiver import create_web_app
from worker.runtime.embedded import LocalDispatcher, embedded_runtime
from worker.runtime.jobs import Runtime
from worker.runtime.settings import EngineSettings

STANDARD_SECRET = "whsec_" + base64.b64encode(b"two-way-standard-secret!").decode()
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


@dataclass
class TwoWay:
    runtime: Runtime
    dispatcher: LocalDispatcher
    receiver: BackgroundServer
    sandbox: BackgroundSandbox
    planhat: PlanhatClient
    _ids: Iterator[int] = field(default_factory=itertools.count)

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    def send(
        self, model: str, key: str, version: int, fields: Mapping[str, Any], **extra: Any
    ) -> httpx.Response:
        """A signed standard event into the receiver."""
        body = json.dumps(
            {"model": model, "key": {"sourceId": key}, "fields": fields, "version": version} | extra
        ).encode()
        headers = signed_headers(STANDARD_SECRET, f"in-{next(self._ids)}", body, int(time.time()))
        return httpx.post(
            f"{self.receiver.url}/webhooks/default/standard", content=body, headers=headers
        )

    def hint(self, body: Any, secret: str = PLANHAT_SECRET) -> httpx.Response:
        """A Planhat Automation's webhook, as the admin's template sends it."""
        return httpx.post(
            f"{self.receiver.url}/webhooks/default/planhat",
            json=body,
            headers={"authorization": f"Bearer {secret}"},
        )

    def ui_edit(self, model: str, planhat_id: str, fields: Mapping[str, Any]) -> None:
        edited = httpx.post(f"{self.sandbox.url}/_sandbox/ui/{model}/{planhat_id}", json=fields)
        edited.raise_for_status()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.sandbox.url}/_sandbox/stats").json()
        return stats

    def rows(self, table: type[SQLModel]) -> list[Any]:
        with session_scope(self.engine) as session:
            return list(session.exec(select(table)))

    def links(self) -> dict[str, Link]:
        return {link.key: link for link in self.rows(Link)}

    def letters(self) -> list[DeadLetter]:
        return list(self.rows(DeadLetter))

    def busy(self) -> bool:
        with session_scope(self.engine) as session:
            waiting = has_pending(session, "default")
            for table in (OutboxItem, WriteBackItem):
                waiting = waiting or bool(
                    session.exec(select(func.count()).select_from(table)).one()
                )
        hints = self.stats()["automations"]["pending"]
        return waiting or hints > 0 or not self.dispatcher.idle()

    def drain(self, timeout: float = 60) -> None:
        """Until nothing moves: no hint on its way, nothing pending or queued, idle, twice
        in a row (a hint may arrive just after a flush settles)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3:
            if time.monotonic() > deadline:
                raise AssertionError("the two-way engine did not drain")
            quiet = 0 if self.busy() else quiet + 1
            time.sleep(0.1)


@contextmanager
def two_way(
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
    tmp_path: Path,
    *,
    automations: tuple[str, ...] = (),
    options: Mapping[str, str] | None = None,
    config: EngineSettings = FAST,
    sandbox_config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    apis: SourceApis | None = None,
) -> Iterator[TwoWay]:
    """The embedded engine with a receiver on a socket; the sandbox's Automations on
    ``automations`` POST to that receiver (bearer ``PLANHAT_SECRET``). ``secrets`` and
    ``apis``: more sources' secrets, and where their APIs are (stand-ins)."""
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    box = SecretBox(Fernet.generate_key().decode())
    tenant: list[Tenant] = []

    def connections(engine: Engine) -> Connections:
        return Connections(engine, box=lambda: box, default=lambda: tenant[0])

    runtime, dispatcher = embedded_runtime(url, connections, config, apis or SourceApis())
    app = create_web_app(
        connections=connections(runtime.engine),
        inbox=Inbox(ThreadedWriter(runtime.engine), dispatcher),
    )
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
            secrets={"standard": STANDARD_SECRET, "planhat": PLANHAT_SECRET, **(secrets or {})},
            options=dict(options or {}),
        )
    )
    receiver.start()
    dispatcher.start()
    planhat = PlanhatClient("test-token", base_url=sandbox.url)
    try:
        yield TwoWay(runtime, dispatcher, receiver, sandbox, planhat)
    finally:
        planhat.close()
        dispatcher.stop()
        receiver.stop()
        runtime.engine.dispose()
