"""Intercom ⇄ Planhat on the embedded engine (SQLite), with both stand-ins on real sockets:
the Planhat sandbox, whose ticket Automation POSTs to our receiver, and the Intercom
stand-in, whose signed notifications POST to our receiver and whose API the source reads
and writes (``SourceApis(intercom=…)``). The twin of ``tests/engine/zendesk_two_way.py``.

The test acts in Intercom as another app (its own token and ``app_package_code``) or as an
admin in the inbox (``admin_edit``); the worker's token is the app ``planhat-sync``, the
code the connection's ``intercom.app_package_code`` names.

    with intercom_two_way(start_sandbox, tmp_path) as sync:
        ticket, planhat_id = mirrored(sync)
        sync.admin_edit(ticket, state="resolved"); sync.drain()
        assert sync.calls() == Calls(intercom={...}, planhat={...})
"""

from __future__ import annotations

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

from connectors.intercom.api import headers
from connectors.intercom.sandbox import IntercomConfig, create_app
from connectors.intercom.sandbox.store import IntercomStore
from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox, BackgroundServer
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import migrate, session_scope
from state.inbox import has_pending
from state.tables import DeadLetter, InboxEvent, Link, OutboxItem, WriteBackItem
from tests.engine.two_way import FAST, PLANHAT_SECRET
from tests.engine.zendesk_two_way import COMPANY, UNPACED
from tests.intercom.stand_in import CLIENT_SECRET, TOKEN
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.poll import SourceApis
from worker.intake.receiver import create_web_app
from worker.runtime.embedded import LocalDispatcher, Sweeper, embedded_runtime
from worker.runtime.jobs import Runtime, run_poll
from worker.runtime.ratelimit import WriteLimiters
from worker.runtime.settings import EngineSettings

OUR_APP = "planhat-sync"
TESTER_TOKEN, TESTER_APP = "tester-token", "tester-app"
INTERCOM_SECRETS = {"intercom": CLIENT_SECRET, "intercom:access_token": TOKEN}
OPTIONS = {"intercom.app_package_code": OUR_APP}
STATES = {  # the stand-in's unarchived states by category (store.STATES)
    "submitted": "4517893",
    "in_progress": "4517894",
    "waiting_on_customer": "4517895",
    "resolved": "4517896",
}
TICKET_GET, TICKET_PUT = "GET /tickets/{id}", "PUT /tickets/{id}"
CONTACT_GET, COMPANIES_GET = "GET /contacts/{id}", "GET /contacts/{id}/companies"
SEARCH, STATES_GET = "POST /tickets/search", "GET /ticket_states"
CONTACT_READ = {CONTACT_GET: 1, COMPANIES_GET: 1}  # a contact seen first (then cached)
ECHO_READ = {"GET /tickets": 1}  # the Automation's hint for our own write, read and dropped


@dataclass(frozen=True)
class Calls:
    """API calls counted by each stand-in since the last reset (route → count)."""

    intercom: dict[str, int]
    planhat: dict[str, int]


@dataclass
class IntercomTwoWay:
    runtime: Runtime
    dispatcher: LocalDispatcher
    receiver: BackgroundServer
    sandbox: BackgroundSandbox
    intercom: BackgroundServer
    apis: SourceApis
    planhat: PlanhatClient
    intercom_api: httpx.Client  # the test's own, as another app (not counted)
    _ahead: list[float]
    _contacts: dict[str, str] = field(default_factory=dict)
    _planhat_base: Counter[str] = field(default_factory=Counter)
    _own: Counter[str] = field(default_factory=Counter)  # the test's own Intercom API calls

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    # --- the Intercom side ---------------------------------------------------------------

    def _api(self, method: str, route: str, path: str, body: Any = None) -> Any:
        answer = self.intercom_api.request(method, path, json=body)
        self._own[f"{method} {route}"] += 1
        assert answer.status_code == 200, answer.text
        return answer.json()

    def contact(self, email: str | None, company: str | None = None) -> str:
        """An Intercom contact (once per e-mail), in the company of that ``company_id``."""
        name = f"{email}|{company}"
        if name not in self._contacts:
            made = self._api("POST", "/contacts", "/contacts", {"email": email, "role": "user"})
            if company:
                body = {"company_id": company, "name": company}
                held = self._api("POST", "/companies", "/companies", body)
                path = f"/contacts/{made['id']}/companies"
                self._api("POST", "/contacts/{id}/companies", path, {"id": held["id"]})
            self._contacts[name] = str(made["id"])
        return self._contacts[name]

    def intercom_ticket(
        self, *, email: str | None = "ann@acme.example", company: str | None = None, **more: Any
    ) -> dict[str, Any]:
        """A ticket created through Intercom's API by another app (its notification fires)."""
        attributes = {"_default_title_": "Printer jams", "_default_description_": "It jams"}
        body = {"ticket_type_id": "2979330", "contacts": [{"id": self.contact(email, company)}],
                "ticket_attributes": attributes, **more}  # fmt: skip
        made: dict[str, Any] = self._api("POST", "/tickets", "/tickets", body)
        return made

    def other_app_update(self, ticket_id: str, **given: Any) -> None:
        """``PUT /tickets/{id}`` by another app (its own ``app_package_code``)."""
        self._api("PUT", "/tickets/{id}", f"/tickets/{ticket_id}", given)

    def admin_edit(self, ticket_id: str, *, state: str | None = None, **given: Any) -> None:
        """An admin's edit in Intercom's inbox (``state``: a category, its first state):
        no API call counted, no ``app_package_code``; the notification fires."""
        if state is not None:
            given["ticket_state_id"] = STATES[state]
        url = f"/_sandbox/ui/tickets/{ticket_id}"
        self.intercom_api.post(url, json=given).raise_for_status()

    def intercom_read(self, ticket_id: str) -> dict[str, Any]:
        ticket: dict[str, Any] = self.intercom_store().tickets[ticket_id]
        return dict(ticket)

    def intercom_state(self, ticket_id: str) -> str:
        return str(self.intercom_read(ticket_id)["ticket_state"]["id"])

    def intercom_store(self) -> IntercomStore:
        store: IntercomStore = self.intercom.app.state.sandbox.store  # type: ignore[attr-defined]
        return store

    def intercom_ahead(self, seconds: float) -> None:
        """Run Intercom's clock ahead: its stamps are whole seconds, so a change made there
        within the second of one made in Planhat would otherwise seem older."""
        self._ahead[0] = seconds

    def wait_past_intercom_stamp(self, ticket_id: str, timeout: float = 5.0) -> None:
        """Until our clock is past the ticket's ``updated_at`` (by Intercom's clock): a
        CSM's change made then is later than the ticket's last change in Intercom."""
        stamp = int(self.intercom_read(ticket_id)["updated_at"])
        deadline = time.monotonic() + timeout
        while time.time() <= stamp + 0.01:
            if time.monotonic() > deadline:
                raise AssertionError("the Intercom stamp stays in the future")
            time.sleep(0.05)

    def pause_webhook(self, paused: bool = True) -> None:
        self.intercom_api.post("/_sandbox/webhook", json={"paused": paused}).raise_for_status()

    def intercom_faults(self, **faults: int) -> None:
        """``rate_limited=n`` (``reset_in_s``): the next n API requests are 429s;
        ``fail_search=n``: the n-th search request from now is a 500, once."""
        self.intercom_api.post("/_sandbox/faults", json=faults).raise_for_status()

    def intercom_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.intercom_api.get("/_sandbox/stats").json()
        return stats

    # --- the Planhat side ----------------------------------------------------------------

    def planhat_ticket(self, source_id: str) -> dict[str, Any]:
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
        self.intercom_api.post("/_sandbox/reset").raise_for_status()
        self._planhat_base = Counter(self.planhat_stats()["by_route"])
        self._own = Counter()

    def calls(self) -> Calls:
        """The API calls the worker made of each side since ``reset_calls`` (the test's own
        Intercom calls left out). Take this before reading Planhat (it counts reads)."""
        intercom = dict(Counter(self.intercom_stats()["by_route"]) - self._own)
        now = Counter(self.planhat_stats()["by_route"])
        return Calls(intercom=intercom, planhat=dict(now - self._planhat_base))

    def poll(self) -> int:
        """One poll of every feed (Intercom's search), as beat runs it."""
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
        hooks = self.intercom_stats()["webhook"]["pending"]
        return waiting or hints > 0 or hooks > 0 or not self.dispatcher.idle()

    def drain(self, timeout: float = 30) -> None:
        """Until nothing moves on either side, three looks in a row."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3:
            if time.monotonic() > deadline:
                raise AssertionError("the Intercom two-way engine did not drain")
            quiet = 0 if self.busy() else quiet + 1
            time.sleep(0.05)


def mirrored(sync: IntercomTwoWay, **ticket: Any) -> tuple[str, str]:
    """A ticket made in Intercom and mirrored to Planhat; the counters zeroed after it."""
    made = sync.intercom_ticket(**ticket)
    sync.drain()
    planhat_id = str(sync.planhat_ticket(made["id"])["_id"])
    sync.reset_calls()
    return str(made["id"]), planhat_id


@contextmanager
def intercom_two_way(
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
    tmp_path: Path,
    *,
    options: Mapping[str, str] | None = None,
    config: EngineSettings = FAST,
    intercom_config: Mapping[str, Any] | None = None,
    company: Mapping[str, Any] | None = COMPANY,
) -> Iterator[IntercomTwoWay]:
    """Both stand-ins and the embedded engine between them; ``company`` is created in
    Planhat first (externalId ``acme``, domain ``acme.example``). ``options`` are added
    to ``OPTIONS`` (our app's package code named)."""
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    box = SecretBox(Fernet.generate_key().decode())
    tenant: list[Tenant] = []

    def connections(engine: Engine) -> Connections:
        return Connections(engine, box=lambda: box, default=lambda: tenant[0])

    ahead = [0.0]  # seconds the stand-in's clock runs ahead of ours (``intercom_ahead``)
    store = IntercomStore("sandbox", clock=lambda: time.time() + ahead[0])
    given: dict[str, Any] = {
        "tokens": frozenset({TOKEN, TESTER_TOKEN}),
        "app_codes": {TOKEN: OUR_APP, TESTER_TOKEN: TESTER_APP},
        "client_secret": CLIENT_SECRET,
        **(intercom_config or {}),
    }
    intercom_app = create_app(IntercomConfig(**given), store)
    intercom = BackgroundServer(intercom_app)
    apis = SourceApis(intercom=intercom.url)
    runtime, dispatcher = embedded_runtime(url, connections, config, apis)
    # Intercom's budget is the stand-in's to enforce here (its windows, 429s)
    runtime.write_limiters = WriteLimiters(lambda rate, burst: UNPACED)
    app = create_web_app(
        connections=connections(runtime.engine),
        inbox=Inbox(ThreadedWriter(runtime.engine), dispatcher),
    )
    receiver = BackgroundServer(app)
    # Beat's sweeps (no polls: a test polls when it says so), for events due later
    sweeper = Sweeper(runtime, config.sweep_interval)
    # The app's webhook is configured once our receiver's address is known.
    intercom_app.state.sandbox.webhook.url = f"{receiver.url}/webhooks/default/intercom"
    sandbox = start_sandbox(
        SandboxConfig(
            automations={"tickets": f"{receiver.url}/webhooks/default/planhat"},
            automation_secret=PLANHAT_SECRET,
            rate_per_minute=1e9,
            burst=10**6,
        )
    )
    tenant.append(
        Tenant(
            name="default",
            planhat_base_url=sandbox.url,
            planhat_token="sync-token",
            secrets={"planhat": PLANHAT_SECRET, **INTERCOM_SECRETS},
            options={**OPTIONS, **(options or {})},
        )
    )
    intercom.start()
    receiver.start()
    dispatcher.start()
    sweeper.start()
    planhat = PlanhatClient("test-token", base_url=sandbox.url)
    intercom_api = httpx.Client(base_url=intercom.url, headers=headers(TESTER_TOKEN))
    try:
        if company is not None:
            planhat.create("companies", company)
        yield IntercomTwoWay(
            runtime, dispatcher, receiver, sandbox, intercom, apis, planhat, intercom_api, ahead
        )
    finally:
        intercom_api.close()
        planhat.close()
        sweeper.stop()
        sweeper.join(timeout=5)
        dispatcher.stop()
        receiver.stop()
        intercom.stop()
        runtime.engine.dispose()
