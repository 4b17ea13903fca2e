"""Zendesk ⇄ Planhat on the embedded engine (SQLite), with both stand-ins on real sockets:
the Planhat sandbox, whose ticket Automation POSTs to our receiver, and the Zendesk
stand-in, whose signed event webhook POSTs to our receiver and whose API the source
reads and writes (``SourceApis(zendesk=…)``). The shared parts are
``tests/engine/helpdesk_harness.py``'s.

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.zendesk.sandbox import ZendeskConfig, create_app
from connectors.zendesk.sandbox.store import ZendeskStore, seconds_of
from tests.engine.embedded_harness import FAST
from tests.engine.helpdesk_harness import (
    COMPANY,
    HelpdeskStandIn,
    HelpdeskTwoWay,
    helpdesk_two_way,
    wait_past,
)
from tests.zendesk.stand_in import EMAIL, TOKEN, WEBHOOK_SECRET, basic
from worker.runtime.settings import EngineSettings

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
class ZendeskTwoWay(HelpdeskTwoWay):
    """The test acts in Zendesk as another user (``tester@acme.example``) through its
    API, or as an agent in its UI (``agent_edit``)."""

    _users: dict[str, int] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    drained_what: ClassVar[str] = "the Zendesk two-way engine"

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
        answer = self.stand_in_api.post(path, json=body)
        self.count_own(f"POST {path}")
        assert answer.status_code == 201, answer.text
        document: dict[str, Any] = answer.json()
        return document

    def agent_edit(self, ticket_id: int, **fields: Any) -> None:
        """An agent's edit in Zendesk's UI: no API call counted, the webhook fires. Made
        once our clock is past the ticket's ``updated_at``: an edit within that second would
        take the next one, ahead of the clock, and the export (up to now) would leave it
        out (seen on a loaded machine: a poll finding nothing)."""
        self.wait_past_zendesk_stamp(ticket_id)
        edited = self.stand_in_api.post(f"/_sandbox/ui/tickets/{ticket_id}", json=fields)
        edited.raise_for_status()

    def agent_edit_before_next_put(self, ticket_id: int, **fields: Any) -> None:
        """An agent's edit saved just before the next API update of the ticket: that
        update's ``updated_stamp`` is then stale (a 409)."""
        url = f"/_sandbox/ui/tickets/{ticket_id}"
        self.stand_in_api.post(url, params={"before_next_put": 1}, json=fields).raise_for_status()

    def zendesk_delete(self, ticket_id: int) -> None:
        """Deleted through Zendesk's API by another user (the webhook fires)."""
        path = f"/api/v2/tickets/{ticket_id}.json"
        assert self.stand_in_api.delete(path).status_code == 204
        self.count_own(zd("DELETE", "tickets/{id}"))

    def zendesk_resave(self, ticket_id: int) -> None:
        """A system update that changes nothing (a trigger re-saving the ticket): only its
        ``generated_timestamp`` moves, no event fires (developer.zendesk.com, Tickets:
        ``updated_at`` changes only if the update generates a ticket event)."""
        status = self.zendesk_read(ticket_id)["status"]
        path = f"/api/v2/tickets/{ticket_id}.json"
        answer = self.stand_in_api.put(path, json={"ticket": {"status": status}})
        assert answer.status_code == 200, answer.text
        self.count_own(zd("PUT", "tickets/{id}"))

    def zendesk_read(self, ticket_id: int) -> dict[str, Any]:
        ticket: dict[str, Any] = self.zendesk_store().tickets[ticket_id]
        return dict(ticket)

    def zendesk_store(self) -> Any:
        return self.stand_in.app.state.sandbox.store  # type: ignore[attr-defined]

    def zendesk_ahead(self, seconds: float) -> None:
        self.run_ahead(seconds)

    def wait_past_zendesk_stamp(self, ticket_id: int, timeout: float = 5.0) -> None:
        """Until our clock is past the ticket's ``updated_at``. The stand-in never gives a
        ticket the same ``updated_at`` twice: changes within one second take the next,
        a stamp in the future that a Planhat change made meanwhile would seem older than."""
        stamp = seconds_of(self.zendesk_read(ticket_id)["updated_at"]) - self._ahead[0]
        # whole seconds: past the end of that second
        wait_past(stamp + 1, "the Zendesk stamp", timeout)

    def poll(self) -> int:
        """One poll, as beat runs it, once our clock is past every ticket's newest stamp:
        a ticket changed twice within a second gets the next second's stamp (see above),
        and the export, which lists up to now, would leave it out until then (seen in CI:
        a poll right after our write-back found nothing)."""
        store = self.zendesk_store()
        with store.lock:
            stamps = [int(ticket["generated_timestamp"]) for ticket in store.tickets.values()]
        wait_past(max(stamps, default=0) - self._ahead[0] + 1, "the newest Zendesk stamp")
        return super().poll()

    def fail_export_page(self, n: int) -> None:
        """The ``n``-th export request from now is answered 500, once."""
        self.stand_in_api.post("/_sandbox/export", json={"fail_page": n}).raise_for_status()

    def zendesk_access(self, **given: Any) -> None:
        """Revoke the sync user's token (``token="revoked"``: 401s) or forbid it
        (``forbidden=True``: 403s)."""
        body = {"email": EMAIL, **given}
        self.stand_in_api.post("/_sandbox/access", json=body).raise_for_status()

    def zendesk_stats(self) -> dict[str, Any]:
        return self.stand_in_stats()

    def calls(self) -> Calls:
        """The API calls the worker made of each side since ``reset_calls`` (the test's own
        Zendesk calls left out). Take this before reading Planhat (it counts reads)."""
        zendesk, planhat = self.calls_of_each_side()
        return Calls(zendesk=zendesk, planhat=planhat)


def mirrored(sync: ZendeskTwoWay, **ticket: Any) -> tuple[int, str]:
    """A ticket made in Zendesk and mirrored to Planhat; the counters zeroed after it."""
    made = sync.zendesk_ticket(**ticket)
    return int(made["id"]), sync.mirror(made["id"])


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
    ahead = [0.0]  # seconds the stand-in's clock runs ahead of ours (``zendesk_ahead``)
    store = ZendeskStore("acme", clock=lambda: time.time() + ahead[0])
    given: dict[str, Any] = {
        "subdomain": "acme",
        "credentials": {EMAIL: TOKEN, "tester@acme.example": "tester"},
        "export_lag_s": 0,
        "webhook_secret": WEBHOOK_SECRET,
        **(zendesk_config or {}),
    }
    zendesk = HelpdeskStandIn(
        create_app(ZendeskConfig(**given), store),
        source="zendesk",
        client_headers={"authorization": basic("tester@acme.example", "tester")},
    )
    with helpdesk_two_way(
        ZendeskTwoWay,
        zendesk,
        ahead,
        start_sandbox,
        tmp_path,
        config=config,
        secrets=ZENDESK_SECRETS,
        options=options or {},
        sandbox_config=sandbox_config,
        company=company,
        paced=paced,
        sweeps=False,
    ) as sync:
        yield sync
