"""Intercom ⇄ Planhat end to end on PostgreSQL + Redis (tests/engine/helpdesk_e2e.py): the
Intercom stand-in as a process (``planhat-sync intercom-sandbox``), its signed
notifications POSTing to the receiver; the tickets created through its API by another
app (its own token and ``app_package_code``), each ticket's contact on its company's
domain (odd companies) or in an Intercom company whose ``company_id`` is the Planhat
company's ``externalId`` (even); changes made by an admin in its inbox (the stand-in's
``/_sandbox/ui``); both sides compared on status (the state's category) and title.

The worker's token is the app ``planhat-sync``, the code the ``default`` connection's
``intercom.app_package_code`` names (INTERCOM_APP_PACKAGE_CODE): its own writes coming
back are echoes by their parts, on top of the hash rule.

``tests/engine/test_e2e_intercom.py`` runs it small in CI (and full with
PLANHAT_SYNC_INTERCOM_E2E_FULL=1); ``bench/bench_intercom.py`` runs it full and prints it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from connectors.intercom.api import headers
from tests.engine import helpdesk_e2e
from tests.engine.harness import RedisServer, free_port
from tests.engine.helpdesk_workload import Outcome, Size
from worker.cli.stand_in import StandInProcess

__all__ = ["FULL", "SMALL", "Outcome", "Size", "run"]

OUR_APP, TESTER_APP, OBSERVER_APP = "planhat-sync", "tester-app", "observer-app"
STATES = {  # the stand-in's first unarchived state of each category (its store.STATES)
    "submitted": "4517893",
    "in_progress": "4517894",
    "waiting_on_customer": "4517895",
    "resolved": "4517896",
}
STATUSES = ("in_progress", "waiting_on_customer", "resolved")  # from submitted
PAGE = 150  # the largest page search allows

SMALL = Size(tickets=60, companies=15, change_seconds=15.0)
FULL = Size(tickets=500, companies=50, change_seconds=180.0)


class IntercomStandIn(StandInProcess):
    """Three apps' tokens: the worker's (``planhat-sync``), the tester's and the observer's."""

    name = "Intercom stand-in"

    def __init__(self, port: int, webhook_url: str) -> None:
        self.token, self.tester, self.observer = (secrets.token_urlsafe(18) for _ in range(3))
        self.client_secret = secrets.token_urlsafe(24)
        super().__init__(port, [
            "intercom-sandbox", "--port", str(port), "--webhook-url", webhook_url,
            "--client-secret", self.client_secret, "--token", self.token,
            "--token", self.tester, "--app-code", f"{self.tester}={TESTER_APP}",
            "--token", self.observer, "--app-code", f"{self.observer}={OBSERVER_APP}",
        ])  # fmt: skip


class Intercom:
    name, source, statuses = "Intercom", "intercom", STATUSES

    def __init__(self, receiver: str) -> None:
        self.stand_in = IntercomStandIn(free_port(), f"{receiver}/intercom")
        self.observer = httpx.Client(base_url=self.stand_in.url, timeout=30,
                                     headers=headers(self.stand_in.observer))  # fmt: skip

    def engine_env(self) -> dict[str, str]:
        return {
            "INTERCOM_ACCESS_TOKEN": self.stand_in.token,
            "INTERCOM_CLIENT_SECRET": self.stand_in.client_secret,
            "INTERCOM_API_BASE": self.stand_in.url,
            "INTERCOM_APP_PACKAGE_CODE": OUR_APP,
        }

    def create_tickets(self, size: Size) -> list[str]:
        """Companies for the even Planhat companies (``company_id`` their externalId), then
        a contact and a ticket for each ticket: the contact on the company's domain (odd)
        or elsewhere and in the company (even)."""
        keys: list[str] = []
        auth = headers(self.stand_in.tester)
        with httpx.Client(base_url=self.stand_in.url, timeout=30, headers=auth) as http:

            def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
                while True:
                    answer = http.post(path, json=body)
                    if answer.status_code != 429:  # the tester app's own window
                        answer.raise_for_status()
                        created: dict[str, Any] = answer.json()
                        return created
                    time.sleep(max(0.1, float(answer.headers["x-ratelimit-reset"]) - time.time()))

            companies = {
                i: post("/companies", {"company_id": f"ext-{i}", "name": f"Company {i}"})["id"]
                for i in range(0, size.companies, 2)
            }
            for n in range(size.tickets):
                i = n % size.companies
                domain = f"co{i}.example" if i % 2 else f"mail{i}.example"
                contact = post("/contacts", {"email": f"user{n}@{domain}", "role": "user"})["id"]
                if i in companies:
                    post(f"/contacts/{contact}/companies", {"id": companies[i]})
                attributes = {"_default_title_": f"Ticket {n}",
                              "_default_description_": f"Something about {n}"}  # fmt: skip
                made = post("/tickets", {"ticket_type_id": "2979330",
                                         "contacts": [{"id": contact}],
                                         "ticket_attributes": attributes})  # fmt: skip
                keys.append(str(made["id"]))
        return keys

    def ui_edit(self, ui: httpx.Client, key: str, status: str) -> None:
        url = f"{self.stand_in.url}/_sandbox/ui/tickets/{key}"
        ui.post(url, json={"ticket_state_id": STATES[status]}).raise_for_status()

    def read(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), PAGE):
            query = {"field": "id", "operator": "IN", "value": keys[start : start + PAGE]}
            body = {"query": query, "pagination": {"per_page": PAGE}}
            answer = self.observer.post("/tickets/search", json=body)
            answer.raise_for_status()
            found.update({str(t["id"]): t for t in answer.json()["tickets"]})
        return found

    def status(self, ticket: Mapping[str, Any]) -> str:
        return str(ticket["ticket_state"]["category"])

    def differs(self, ticket: Mapping[str, Any], record: Mapping[str, Any]) -> str | None:
        title = ticket["ticket_attributes"]["_default_title_"]
        if (self.status(ticket), title) == (record.get("status"), record.get("title")):
            return None
        return (f"intercom {self.status(ticket)}/{title!r}, planhat "
                f"{record.get('status')}/{record.get('title')!r}")  # fmt: skip

    def count(self, outcome: Outcome, stats: Mapping[str, Any]) -> None:
        s = outcome.size
        outcome.source_calls = dict(stats["by_app"].get(OUR_APP, {}))
        outcome.source_minimum = (
            2 * outcome.planhat_changes + 1 + 2 * s.tickets,
            "a read and a PUT per Planhat change, Intercom has neither a conditional nor a "
            "bulk update; the ticket states once; each ticket's contact and its companies "
            "once, a notification names them only by id",
        )
        outcome.source_naive = (
            3 * (s.tickets + outcome.source_changes + outcome.planhat_changes)
            + 2 * outcome.planhat_changes,
            "a read of the ticket, its contact and its companies per notification (our "
            "writes' echoes included) and a read and a PUT per Planhat change",
        )

    def close(self) -> None:
        self.observer.close()


def run(
    size: Size, redis: RedisServer, logs: Path, engine_env: dict[str, str] | None = None
) -> Outcome:
    """One run at ``size`` (``helpdesk_e2e.run``)."""
    return helpdesk_e2e.run(Intercom, size, redis, logs, engine_env)
