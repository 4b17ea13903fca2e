"""Intercom ⇄ Planhat on the embedded engine (SQLite), with both stand-ins on real sockets:
the Planhat sandbox, whose ticket Automation POSTs to our receiver, and the Intercom
stand-in, whose signed notifications POST to our receiver and whose API the source reads
and writes (``SourceApis(intercom=…)``). The shared parts are
``tests/engine/helpdesk_harness.py``'s.

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from connectors.intercom.api import headers
from connectors.intercom.sandbox import IntercomConfig, create_app
from connectors.intercom.sandbox.store import IntercomStore
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests.engine.embedded_harness import FAST
from tests.engine.helpdesk_harness import (
    COMPANY,
    HelpdeskStandIn,
    HelpdeskTwoWay,
    helpdesk_two_way,
    wait_past,
)
from tests.intercom.stand_in import CLIENT_SECRET, TOKEN
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
class IntercomTwoWay(HelpdeskTwoWay):
    _contacts: dict[str, str] = field(default_factory=dict)

    drained_what: ClassVar[str] = "the Intercom two-way engine"

    def _api(self, method: str, route: str, path: str, body: Any = None) -> Any:
        answer = self.stand_in_api.request(method, path, json=body)
        self.count_own(f"{method} {route}")
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
        self.stand_in_api.post(url, json=given).raise_for_status()

    def intercom_read(self, ticket_id: str) -> dict[str, Any]:
        ticket: dict[str, Any] = self.intercom_store().tickets[ticket_id]
        return dict(ticket)

    def intercom_state(self, ticket_id: str) -> str:
        return str(self.intercom_read(ticket_id)["ticket_state"]["id"])

    def intercom_store(self) -> IntercomStore:
        store: IntercomStore = self.stand_in.app.state.sandbox.store  # type: ignore[attr-defined]
        return store

    def intercom_ahead(self, seconds: float) -> None:
        self.run_ahead(seconds)

    def wait_past_intercom_stamp(self, ticket_id: str, timeout: float = 5.0) -> None:
        """Until our clock is past the ticket's ``updated_at`` (by Intercom's clock): a
        CSM's change made then is later than the ticket's last change in Intercom."""
        stamp = int(self.intercom_read(ticket_id)["updated_at"])
        wait_past(stamp + 0.01, "the Intercom stamp", timeout)

    def ui_edit(self, planhat_id: str, **fields: Any) -> None:
        """A CSM's edit in Planhat's UI, made once our clock is past every Intercom stamp:
        a ticket changed twice within a second gets the next second's ``updated_at``, and
        a CSM's edit within it would seem older than our own write (seen in CI: the
        write-back then left Intercom alone as "changed later")."""
        store = self.intercom_store()
        with store.lock:
            stamps = [int(ticket["updated_at"]) for ticket in store.tickets.values()]
        wait_past(max(stamps, default=0) - self._ahead[0] + 0.01, "the newest Intercom stamp")
        super().ui_edit(planhat_id, **fields)

    def intercom_faults(self, **faults: int) -> None:
        """``rate_limited=n`` (``reset_in_s``): the next n API requests are 429s;
        ``fail_search=n``: the n-th search request from now is a 500, once."""
        self.stand_in_api.post("/_sandbox/faults", json=faults).raise_for_status()

    def intercom_stats(self) -> dict[str, Any]:
        return self.stand_in_stats()

    def calls(self) -> Calls:
        """The API calls the worker made of each side since ``reset_calls`` (the test's own
        Intercom calls left out). Take this before reading Planhat (it counts reads)."""
        intercom, planhat = self.calls_of_each_side()
        return Calls(intercom=intercom, planhat=planhat)


def mirrored(sync: IntercomTwoWay, **ticket: Any) -> tuple[str, str]:
    """A ticket made in Intercom and mirrored to Planhat; the counters zeroed after it."""
    made = sync.intercom_ticket(**ticket)
    return str(made["id"]), sync.mirror(made["id"])


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
    to ``OPTIONS`` (our app's package code named). The test acts in Intercom as another
    app (``TESTER_TOKEN``)."""
    ahead = [0.0]  # seconds the stand-in's clock runs ahead of ours (``intercom_ahead``)
    store = IntercomStore("sandbox", clock=lambda: time.time() + ahead[0])
    given: dict[str, Any] = {
        "tokens": frozenset({TOKEN, TESTER_TOKEN}),
        "app_codes": {TOKEN: OUR_APP, TESTER_TOKEN: TESTER_APP},
        "client_secret": CLIENT_SECRET,
        **(intercom_config or {}),
    }
    intercom = HelpdeskStandIn(
        create_app(IntercomConfig(**given), store),
        source="intercom",
        client_headers=headers(TESTER_TOKEN),
    )
    # Intercom's budget is the stand-in's to enforce here (its windows, 429s); beat's
    # sweeps run, for events due later.
    with helpdesk_two_way(
        IntercomTwoWay,
        intercom,
        ahead,
        start_sandbox,
        tmp_path,
        config=config,
        secrets=INTERCOM_SECRETS,
        options={**OPTIONS, **(options or {})},
        sandbox_config=None,
        company=company,
        paced=False,
        sweeps=True,
    ) as sync:
        yield sync
