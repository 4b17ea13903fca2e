"""Zendesk ⇄ Planhat end to end on PostgreSQL + Redis (tests/engine/helpdesk_e2e.py): the
Zendesk stand-in as a process, its signed event webhook POSTing to the receiver; the
tickets created through its API by an agent, requesters on the companies' domains (odd
companies) or in an organization whose ``external_id`` is the company's (even); changes
made by an agent in its UI; both sides compared on status and priority.

``tests/engine/test_e2e_zendesk.py`` runs it small in CI (and full with
PLANHAT_SYNC_ZENDESK_E2E_FULL=1); ``bench/bench_zendesk.py`` runs it full and prints it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from connectors.zendesk import api
from tests.engine import helpdesk_e2e
from tests.engine.harness import RedisServer, free_port
from tests.engine.helpdesk_workload import Outcome, Size
from worker.cli.dev_zendesk import AGENT_EMAIL, ZendeskStandIn

__all__ = ["FULL", "SMALL", "Outcome", "Size", "run"]

AGENTS = {"agent@helpdesk.example": "agent-token", "observer@helpdesk.example": "watch-token"}
STATUSES = ("pending", "hold", "solved")  # where a change moves a ticket (from open)

SMALL = Size(tickets=100, companies=10, change_seconds=20.0)
FULL = Size(tickets=1000, companies=100, change_seconds=300.0)


class Zendesk:
    name, source, statuses = "Zendesk", "zendesk", STATUSES

    def __init__(self, receiver: str) -> None:
        self.stand_in = ZendeskStandIn(free_port(), f"{receiver}/zendesk", agents=AGENTS)
        email = "observer@helpdesk.example"  # reads with credentials of its own
        self.observer = api.client({"email": email, "api_token": AGENTS[email]}, self.stand_in.url)

    def engine_env(self) -> dict[str, str]:
        secrets = self.stand_in.secrets()
        return {
            "ZENDESK_WEBHOOK_SECRET": secrets["zendesk"],
            "ZENDESK_SUBDOMAIN": secrets["zendesk:subdomain"],
            "ZENDESK_EMAIL": secrets["zendesk:email"],
            "ZENDESK_API_TOKEN": secrets["zendesk:api_token"],
            "ZENDESK_API_BASE": self.stand_in.url,
        }

    def create_tickets(self, size: Size) -> list[str]:
        """Organizations for the even companies (their ``external_id`` is the company's),
        then the tickets, requesters on the company's domain (odd) or elsewhere (even)."""
        email = "agent@helpdesk.example"
        ids: list[str] = []
        credentials = {"email": email, "api_token": AGENTS[email]}
        with api.client(credentials, self.stand_in.url) as http:

            def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
                while True:
                    answer = http.post(path, json=body)
                    if answer.status_code != 429:  # the agent's own 700 a minute
                        answer.raise_for_status()
                        created: dict[str, Any] = answer.json()
                        return created
                    time.sleep(float(answer.headers.get("retry-after", "1")))

            orgs = {
                i: post("/api/v2/organizations.json", {"organization": {
                    "name": f"Company {i}", "external_id": f"ext-{i}"}})["organization"]["id"]
                for i in range(0, size.companies, 2)
            }  # fmt: skip
            for n in range(size.tickets):
                i = n % size.companies
                domain = f"co{i}.example" if i % 2 else f"mail{i}.example"
                ticket: dict[str, Any] = {
                    "subject": f"Ticket {n}", "status": "open", "priority": "normal",
                    "requester": {"name": f"Requester {n}", "email": f"user{n}@{domain}"},
                    "comment": {"body": f"Something about {n}"},
                }  # fmt: skip
                if i in orgs:
                    ticket["organization_id"] = orgs[i]
                made = post("/api/v2/tickets.json", {"ticket": ticket})["ticket"]["id"]
                ids.append(str(made))
        return ids

    def ui_edit(self, ui: httpx.Client, key: str, status: str) -> None:
        url = f"{self.stand_in.url}/_sandbox/ui/tickets/{key}"
        ui.post(url, json={"status": status}).raise_for_status()

    def read(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 100):
            chunk = ",".join(keys[start : start + 100])
            answer = self.observer.get("/api/v2/tickets/show_many.json", params={"ids": chunk})
            answer.raise_for_status()
            found.update({str(t["id"]): t for t in answer.json()["tickets"]})
        return found

    def status(self, ticket: Mapping[str, Any]) -> str:
        return str(ticket["status"])

    def differs(self, ticket: Mapping[str, Any], record: Mapping[str, Any]) -> str | None:
        if (ticket["status"], ticket["priority"]) == (record.get("status"), record.get("severity")):
            return None
        return (f"zendesk {ticket['status']}/{ticket['priority']}, planhat "
                f"{record.get('status')}/{record.get('severity')}")  # fmt: skip

    def count(self, outcome: Outcome, stats: Mapping[str, Any]) -> None:
        s = outcome.size
        outcome.source_writes_more = f", 409 conflicts: {stats['conflicts']}"
        outcome.source_calls = dict(stats["by_user"].get(AGENT_EMAIL, {}))
        outcome.source_minimum = (
            outcome.planhat_changes + math.ceil(s.tickets / 1000),
            "a PUT per Planhat change, Zendesk has no bulk safe_update; one export page for "
            "the tickets' requesters",
        )
        outcome.source_naive = (
            s.tickets + outcome.source_changes + 3 * outcome.planhat_changes,
            "a read per webhook event (our writes' echoes included) and a read and a PUT per "
            "Planhat change",
        )

    def close(self) -> None:
        self.observer.close()


def run(
    size: Size, redis: RedisServer, logs: Path, engine_env: dict[str, str] | None = None
) -> Outcome:
    """One run at ``size`` (``helpdesk_e2e.run``)."""
    return helpdesk_e2e.run(Zendesk, size, redis, logs, engine_env)
