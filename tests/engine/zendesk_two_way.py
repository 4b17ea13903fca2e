"""Zendesk ⇄ Planhat on the embedded engine (SQLite), with both stand-ins on real sockets:
the Planhat sandbox, whose ticket Automation POSTs to our receiver, and the Zendesk
stand-in, whose signed event webhook POSTs to our receiver and whose API the source
reads and writes (``SourceApis(zendesk=…)``). Modelled on ``tests/engine/two_way.py``.

    with zendesk_two_way(start_sandbox, tmp_path) as sync:
        ticket = sync.zendesk_ticket(subject="Printer", requester="ann@acme.example")
        sync.drain()
        sync.reset_calls()
        sync.agent_edit(ticket["id"], status="solved"); sync.drain()
        assert sync.calls() == Calls(zendesk={...}, planhat={...})
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
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
from connectors.zendesk.sandbox import ZendeskConfig, create_app
from connectors.zendesk.sandbox.store import ZendeskStore, seconds_of
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import migrate, session_scope
from state.inbox import has_pending
from state.tables import DeadLetter, InboxEvent, Link, OutboxItem, WriteBackItem
from tests.engine.two_way import FAST, PLANHAT_SECRET
from tests.zendesk.stand_in import EMAIL, TOKEN, WEBHOOK_SECRET, basic
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.poll import SourceApis
from worker.intake.receiver import create_web_app
from worker.runtime.embedded import LocalDispatcher, embedded_runtime
from worker.runtime.jobs import Runtime, run_poll
from worker.runtime.ratelimit import LocalRateLimiter, WriteLimiters
from worker.runtime.settings import EngineSettings

COMPANY = {"name": "Acme", "externalId": "acme", "domains": ["acme.example"]}
UNPACED = LocalRateLimiter(rate_per_minute=1e6, burst=10**5)
ZENDESK_SECRETS = {
    "zendesk": WEBHOOK_SECRET,
    "zendesk:subdomain": "acme",
    "zendesk:email": EMAIL,
    "zendesk:api_token": TOKEN,
}


@dataclass(frozen=True)
class Calls:
    """API calls counted by each stand-in since the last reset (route → count)."""

    zendesk: dict[str, int]
    planhat: dict[str, int]


def zd(method: str, path: str) -> str:
    """A Zendesk stand-in's route label: ``zd("PUT", "tickets/{id}")``."""
    if path.startswith("incremental"):
        return f"{method} /api/v2/{path}.json"
    return f"{method} /api/v2/{path.replace('{id}', '{id:int}')}.json"


ECHO_READ = {"GET /tickets": 1}  # the Automation's hint for our own write, read and dropped
TICKET_GET, TICKET_PUT = zd("GET", "tickets/{id}"), zd("PUT", "tickets/{id}")
AUDITS, EXPORT = zd("GET", "tickets/{id}/audits"), zd("GET", "incremental/tickets/cursor")


@dataclass
class ZendeskTwoWay:
    runtime: Runtime
    dispatcher: LocalDispatcher
    receiver: BackgroundServer
    sandbox: BackgroundSandbox
    zendesk: BackgroundServer
    apis: SourceApis
    planhat: PlanhatClient
    zendesk_api: httpx.Client  # the test's own, as another Zendesk user (not counted)
    _ahead: list[float]
    _users: dict[str, int] = field(default_factory=dict)
    _planhat_base: Counter[str] = field(default_factory=Counter)
    _own: Counter[str] = field(default_factory=Counter)  # the test's own Zendesk API calls
    _ids: Iterator[int] = field(default_factory=itertools.count)

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    # --- the Zendesk side ----------------------------------------------------------------

    def requester(self, email: str | None) -> int:
        """A Zendesk end user (created once per e-mail; ``None``: one without an e-mail)."""
        name = email or f"no-email-{next(self._ids)}"
        if name not in self._users:
            answer = self.zendesk_post("/api/v2/users.json", {"user": {"email": email}})
            self._users[name] = answer["user"]["id"]
        return self._users[name]

    def organization(self, external_id: str | None) -> int:
        body = {"organization": {"external_id": external_id}}
        org: int = self.zendesk_post("/api/v2/organizations.json", body)["organization"]["id"]
        return org

    def zendesk_ticket(
        self, *, requester: str | None = "ann@acme.example", **ticket: Any
    ) -> dict[str, Any]:
        """A ticket created through Zendesk's API by another user (its webhook fires)."""
        body = {"ticket": {"subject": "Printer jams", "comment": {"body": "It jams"},
                           "requester_id": self.requester(requester), **ticket}}  # fmt: skip
        created: dict[str, Any] = self.zendesk_post("/api/v2/tickets.json", body)["ticket"]
        return created

    def zendesk_post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = self.zendesk_api.post(path, json=body)
        self._own[f"POST {path}"] += 1
        assert answer.status_code == 201, answer.text
        document: dict[str, Any] = answer.json()
        return document

    def agent_edit(self, ticket_id: int, **fields: Any) -> None:
        """An agent's edit in Zendesk's UI: no API call counted, the webhook fires."""
        edited = self.zendesk_api.post(f"/_sandbox/ui/tickets/{ticket_id}", json=fields)
        edited.raise_for_status()

    def agent_edit_before_next_put(self, ticket_id: int, **fields: Any) -> None:
        """An agent's edit saved just before the next API update of the ticket: that
        update's ``updated_stamp`` is then stale (a 409)."""
        url = f"/_sandbox/ui/tickets/{ticket_id}"
        self.zendesk_api.post(url, params={"before_next_put": 1}, json=fields).raise_for_status()

    def zendesk_delete(self, ticket_id: int) -> None:
        """Deleted through Zendesk's API by another user (the webhook fires)."""
        path = f"/api/v2/tickets/{ticket_id}.json"
        assert self.zendesk_api.delete(path).status_code == 204
        self._own[zd("DELETE", "tickets/{id}")] += 1

    def zendesk_resave(self, ticket_id: int) -> None:
        """A system update that changes nothing (a trigger re-saving the ticket): only its
        ``generated_timestamp`` moves, no event fires (developer.zendesk.com, Tickets:
        ``updated_at`` changes only if the update generates a ticket event)."""
        status = self.zendesk_read(ticket_id)["status"]
        path = f"/api/v2/tickets/{ticket_id}.json"
        answer = self.zendesk_api.put(path, json={"ticket": {"status": status}})
        assert answer.status_code == 200, answer.text
        self._own[zd("PUT", "tickets/{id}")] += 1

    def zendesk_read(self, ticket_id: int) -> dict[str, Any]:
        ticket: dict[str, Any] = self.zendesk_store().tickets[ticket_id]
        return dict(ticket)

    def zendesk_store(self) -> Any:
        return self.zendesk.app.state.sandbox.store  # type: ignore[attr-defined]

    def zendesk_ahead(self, seconds: float) -> None:
        """Run Zendesk's clock ahead: its stamps are whole seconds, so a change made there
        within the second of one made in Planhat would otherwise seem older."""
        self._ahead[0] = seconds

    def wait_past_zendesk_stamp(self, ticket_id: int, timeout: float = 5.0) -> None:
        """Until our clock is past the ticket's ``updated_at``. The stand-in never gives a
        ticket the same ``updated_at`` twice: changes within one second take the next,
        a stamp in the future that a Planhat change made meanwhile would seem older than."""
        stamp = seconds_of(self.zendesk_read(ticket_id)["updated_at"]) - self._ahead[0]
        deadline = time.monotonic() + timeout
        while time.time() <= stamp + 1:  # whole seconds: past the end of that second
            if time.monotonic() > deadline:
                raise AssertionError("the Zendesk stamp stays in the future")
            time.sleep(0.05)

    def pause_webhook(self, paused: bool = True) -> None:
        self.zendesk_api.post("/_sandbox/webhook", json={"paused": paused}).raise_for_status()

    def fail_export_page(self, n: int) -> None:
        """The ``n``-th export request from now is answered 500, once."""
        self.zendesk_api.post("/_sandbox/export", json={"fail_page": n}).raise_for_status()

    def zendesk_access(self, **given: Any) -> None:
        """Revoke the sync user's token (``token="revoked"``: 401s) or forbid it
        (``forbidden=True``: 403s)."""
        body = {"email": EMAIL, **given}
        self.zendesk_api.post("/_sandbox/access", json=body).raise_for_status()

    def zendesk_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.zendesk_api.get("/_sandbox/stats").json()
        return stats

    # --- the Planhat side ----------------------------------------------------------------

    def planhat_ticket(self, source_id: int | str) -> dict[str, Any]:
        found = [t for t in self.planhat.list("tickets") if t.get("sourceId") == str(source_id)]
        assert len(found) == 1, f"{len(found)} Planhat tickets have sourceId {source_id}"
        return found[0]

    def ui_edit(self, planhat_id: str, **fields: Any) -> None:
        """A CSM's edit in Planhat's UI (the ticket Automation fires)."""
        url = f"{self.sandbox.url}/_sandbox/ui/tickets/{planhat_id}"
        httpx.post(url, json=fields).raise_for_status()

    def planhat_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.sandbox.url}/_sandbox/stats").json()
        return stats

    def planhat_faults(self, **faults: Any) -> None:
        httpx.post(f"{self.sandbox.url}/_sandbox/faults", json=faults).raise_for_status()

    # --- both ------------------------------------------------------------------------------

    def reset_calls(self) -> None:
        """Zero both stand-ins' call counters (a test's setup is not what it asserts)."""
        self.zendesk_api.post("/_sandbox/reset").raise_for_status()
        self._planhat_base = Counter(self.planhat_stats()["by_route"])
        self._own = Counter()

    def calls(self) -> Calls:
        """The API calls the worker made of each side since ``reset_calls`` (the test's own
        Zendesk calls left out). Planhat's sandbox counts the test's reads too
        (``planhat_ticket``): take this before reading."""
        zendesk = dict(Counter(self.zendesk_stats()["by_route"]) - self._own)
        now = Counter(self.planhat_stats()["by_route"])
        planhat = {k: n for k, n in (now - self._planhat_base).items()}
        return Calls(zendesk=zendesk, planhat=planhat)

    def poll(self) -> int:
        """One poll of every feed (the Zendesk export), as beat runs it."""
        return run_poll(self.runtime, self.apis)

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

    def busy(self) -> bool:
        with session_scope(self.engine) as session:
            waiting = has_pending(session, "default")
            for table in (OutboxItem, WriteBackItem):
                waiting = waiting or bool(
                    session.exec(select(func.count()).select_from(table)).one()
                )
        hints = self.planhat_stats()["automations"]["pending"]
        hooks = self.zendesk_stats()["webhook"]["pending"]
        return waiting or hints > 0 or hooks > 0 or not self.dispatcher.idle()

    def drain(self, timeout: float = 30) -> None:
        """Until nothing moves on either side, three looks in a row."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3:
            if time.monotonic() > deadline:
                raise AssertionError("the Zendesk two-way engine did not drain")
            quiet = 0 if self.busy() else quiet + 1
            time.sleep(0.05)


def mirrored(sync: ZendeskTwoWay, **ticket: Any) -> tuple[int, str]:
    """A ticket made in Zendesk and mirrored to Planhat; the counters zeroed after it."""
    made = sync.zendesk_ticket(**ticket)
    sync.drain()
    planhat_id = str(sync.planhat_ticket(made["id"])["_id"])
    sync.reset_calls()
    return int(made["id"]), planhat_id


@contextmanager
def zendesk_two_way(
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
    tmp_path: Path,
    *,
    options: Mapping[str, str] | None = None,
    config: EngineSettings = FAST,
    zendesk_config: Mapping[str, Any] | None = None,
    sandbox_config: Mapping[str, Any] | None = None,
    company: Mapping[str, Any] | None = COMPANY,
    paced: bool = False,
) -> Iterator[ZendeskTwoWay]:
    """Both stand-ins and the embedded engine between them; ``company`` is created in
    Planhat first (the one tickets of ``@acme.example`` and organization ``acme`` find).
    ``paced``: write back at the source's own rate (Zendesk: 30 a minute, 2 s apart)
    rather than at once."""
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    box = SecretBox(Fernet.generate_key().decode())
    tenant: list[Tenant] = []

    def connections(engine: Engine) -> Connections:
        return Connections(engine, box=lambda: box, default=lambda: tenant[0])

    ahead = [0.0]  # seconds the stand-in's clock runs ahead of ours (``zendesk_ahead``)
    store = ZendeskStore("acme", clock=lambda: time.time() + ahead[0])
    zendesk_app = create_app(
        ZendeskConfig(
            **{
                "subdomain": "acme",
                "credentials": {EMAIL: TOKEN, "tester@acme.example": "tester"},
                "export_lag_s": 0,
                "webhook_secret": WEBHOOK_SECRET,
                **(zendesk_config or {}),
            }
        ),
        store,
    )
    zendesk = BackgroundServer(zendesk_app)
    apis = SourceApis(zendesk=zendesk.url)
    runtime, dispatcher = embedded_runtime(url, connections, config, apis)
    if not paced:  # Zendesk's budget is the stand-in's to enforce here (its limits, 429s)
        runtime.write_limiters = WriteLimiters(lambda rate, burst: UNPACED)
    app = create_web_app(
        connections=connections(runtime.engine),
        inbox=Inbox(ThreadedWriter(runtime.engine), dispatcher),
    )
    receiver = BackgroundServer(app)
    # The event webhook is configured once our receiver's address is known.
    zendesk_app.state.sandbox.webhook.url = f"{receiver.url}/webhooks/default/zendesk"
    given: dict[str, Any] = {"rate_per_minute": 1e9, "burst": 10**6, **(sandbox_config or {})}
    sandbox = start_sandbox(
        SandboxConfig(
            automations={"tickets": f"{receiver.url}/webhooks/default/planhat"},
            automation_secret=PLANHAT_SECRET,
            **given,
        )
    )
    tenant.append(
        Tenant(
            name="default",
            planhat_base_url=sandbox.url,
            planhat_token="sync-token",
            secrets={"planhat": PLANHAT_SECRET, **ZENDESK_SECRETS},
            options=dict(options or {}),
        )
    )
    zendesk.start()
    receiver.start()
    dispatcher.start()
    planhat = PlanhatClient("test-token", base_url=sandbox.url)
    zendesk_api = httpx.Client(
        base_url=zendesk.url, headers={"authorization": basic("tester@acme.example", "tester")}
    )
    try:
        if company is not None:
            planhat.create("companies", company)
        yield ZendeskTwoWay(
            runtime, dispatcher, receiver, sandbox, zendesk, apis, planhat, zendesk_api, ahead
        )
    finally:
        zendesk_api.close()
        planhat.close()
        dispatcher.stop()
        receiver.stop()
        zendesk.stop()
        runtime.engine.dispose()
