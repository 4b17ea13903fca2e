"""The Zendesk end-to-end run's workload (tests/engine/zendesk_e2e.py): its size, the
companies and tickets it makes, the changes it plans on each side, and an observer that
reads both sides with credentials of its own, so its calls are never taken for the
worker's.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.zendesk import api
from tests.engine.harness import engine_state
from worker.cli.dev_zendesk import ZendeskStandIn

AGENTS = {"agent@helpdesk.example": "agent-token", "observer@helpdesk.example": "watch-token"}
STATUSES = ("pending", "hold", "solved")  # where a change moves a ticket (from open)
PLANHAT_PAGE = 2000  # tickets a Planhat list page holds (the sandbox's)


@dataclass(frozen=True, slots=True, kw_only=True)
class Size:
    tickets: int
    companies: int
    change_seconds: float
    zendesk_share: float = 0.2
    planhat_share: float = 0.1
    seed: int = 15


SMALL = Size(tickets=100, companies=10, change_seconds=20.0)
FULL = Size(tickets=1000, companies=100, change_seconds=300.0)


class Observer:
    """Reads both sides with credentials of its own (its calls are not the worker's) and
    counts what it asked Planhat, to take it from the sandbox's counters."""

    def __init__(self, planhat_url: str, zendesk: ZendeskStandIn) -> None:
        self.planhat = httpx.Client(base_url=planhat_url, timeout=30,
                                    headers={"authorization": "Bearer observer"})  # fmt: skip
        email = "observer@helpdesk.example"
        self.zendesk = api.client({"email": email, "api_token": AGENTS[email]}, zendesk.url)
        self.planhat_calls: Counter[str] = Counter()

    def planhat_tickets(self) -> dict[str, dict[str, Any]]:
        """Planhat's zendesk tickets by sourceId."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            self.planhat_calls["GET /tickets"] += 1
            page = self.planhat.get("/tickets", params={"limit": PLANHAT_PAGE, "offset": offset})
            page.raise_for_status()
            records = page.json()
            for record in records:
                if record.get("source") == "zendesk":
                    found[str(record["sourceId"])] = record
            offset += len(records)
            if len(records) < PLANHAT_PAGE:
                return found

    def zendesk_tickets(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            chunk = ",".join(str(i) for i in ids[start : start + 100])
            answer = self.zendesk.get("/api/v2/tickets/show_many.json", params={"ids": chunk})
            answer.raise_for_status()
            found.update({t["id"]: t for t in answer.json()["tickets"]})
        return found

    def close(self) -> None:
        self.planhat.close()
        self.zendesk.close()


def seed_companies(planhat_url: str, count: int, observer: Observer) -> None:
    companies = [
        {"sourceId": f"co-{i}", "name": f"Company {i}", "domains": [f"co{i}.example"],
         **({"externalId": f"ext-{i}"} if i % 2 == 0 else {})}
        for i in range(count)
    ]  # fmt: skip
    observer.planhat_calls["PUT /companies"] += 1
    observer.planhat.put("/companies", json=companies).raise_for_status()


def create_tickets(zendesk: ZendeskStandIn, tickets: int, companies: int) -> list[int]:
    """Organizations for the even companies (their ``external_id`` is the company's),
    then the tickets, requesters on the company's domain (odd) or elsewhere (even)."""
    email = "agent@helpdesk.example"
    ids: list[int] = []
    with api.client({"email": email, "api_token": AGENTS[email]}, zendesk.url) as http:

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
            for i in range(0, companies, 2)
        }  # fmt: skip
        for n in range(tickets):
            i = n % companies
            domain = f"co{i}.example" if i % 2 else f"mail{i}.example"
            ticket: dict[str, Any] = {
                "subject": f"Ticket {n}", "status": "open", "priority": "normal",
                "requester": {"name": f"Requester {n}", "email": f"user{n}@{domain}"},
                "comment": {"body": f"Something about {n}"},
            }  # fmt: skip
            if i in orgs:
                ticket["organization_id"] = orgs[i]
            ids.append(post("/api/v2/tickets.json", {"ticket": ticket})["ticket"]["id"])
    return ids


@dataclass(slots=True)
class Change:
    side: str  # where it is made: "zendesk" or "planhat"
    ticket: int
    status: str
    at: float  # seconds into the change window
    made: float = 0.0  # monotonic time it was made
    crossed: float | None = None


def plan_changes(ids: list[int], size: Size) -> list[Change]:
    """Disjoint sets: a ticket changes on one side only, once, at a random moment."""
    rng = random.Random(size.seed)
    shuffled = rng.sample(ids, len(ids))
    in_zendesk = round(size.zendesk_share * len(ids))
    in_planhat = round(size.planhat_share * len(ids))
    plan = [Change("zendesk", t, rng.choice(STATUSES), rng.uniform(0, size.change_seconds))
            for t in shuffled[:in_zendesk]]  # fmt: skip
    plan += [Change("planhat", t, rng.choice(STATUSES), rng.uniform(0, size.change_seconds))
             for t in shuffled[in_zendesk : in_zendesk + in_planhat]]  # fmt: skip
    return sorted(plan, key=lambda change: change.at)


def watch(observer: Observer, plan: list[Change], stop: threading.Event) -> None:
    """Marks each change crossed when the other side first shows it."""
    while not stop.is_set():
        now_made = [c for c in plan if c.made and c.crossed is None]
        to_planhat = [c for c in now_made if c.side == "zendesk"]
        to_zendesk = [c for c in now_made if c.side == "planhat"]
        if to_planhat:
            tickets = observer.planhat_tickets()
            seen = time.monotonic()
            for c in to_planhat:
                if tickets.get(str(c.ticket), {}).get("status") == c.status:
                    c.crossed = seen
        if to_zendesk:
            tickets_zd = observer.zendesk_tickets([c.ticket for c in to_zendesk])
            seen = time.monotonic()
            for c in to_zendesk:
                if tickets_zd.get(c.ticket, {}).get("status") == c.status:
                    c.crossed = seen
        stop.wait(0.5)


def quiet(planhat_url: str, zendesk_url: str, database_url: str) -> bool:
    """Nothing on its way: no hint nor event undelivered, nothing pending or queued."""
    planhat = httpx.get(f"{planhat_url}/_sandbox/stats", timeout=10).json()
    zendesk = httpx.get(f"{zendesk_url}/_sandbox/stats", timeout=10).json()
    state = engine_state(database_url)
    return (planhat["automations"]["pending"] == 0 and zendesk["webhook"]["pending"] == 0
            and state["pending"] == 0 and state["outbox"] == 0
            and _write_backs(database_url) == 0)  # fmt: skip


def _write_backs(database_url: str) -> int:
    from sqlalchemy import func
    from sqlmodel import select

    from state.db import make_engine, session_scope
    from state.tables import WriteBackItem

    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            return int(session.exec(select(func.count()).select_from(WriteBackItem)).one())
    finally:
        engine.dispose()
