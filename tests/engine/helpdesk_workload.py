"""A helpdesk end-to-end run's workload and accounting (tests/engine/helpdesk_e2e.py): its
size, the companies it puts in Planhat, the changes it plans on each side and watches
cross, an observer that reads Planhat with a token of its own (its calls are never taken
for the worker's), and the outcome with its report.
"""

from __future__ import annotations

import math
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests import stand_in_http
from tests.engine.harness import engine_state

PLANHAT_PAGE = 2000  # tickets a Planhat list page holds (the sandbox's)


@dataclass(frozen=True, slots=True, kw_only=True)
class Size:
    tickets: int
    companies: int
    change_seconds: float
    source_share: float = 0.2  # of the tickets, changed in the helpdesk
    planhat_share: float = 0.1  # of the others, changed in Planhat
    seed: int = 15


@dataclass(slots=True)
class Outcome:
    size: Size
    name: str  # the helpdesk's, as the report says it
    ingest_s: float = 0.0
    settle_s: float = 0.0
    disagreements: list[str] = field(default_factory=list)
    source_changes: int = 0
    planhat_changes: int = 0
    lags: dict[str, list[float]] = field(default_factory=lambda: {"in": [], "out": []})
    not_crossed: list[str] = field(default_factory=list)
    planhat_ticket_writes: int = 0  # records created or changed by the worker's bulk upserts
    planhat_echo_writes: int = 0  # records it wrote as they were
    source_writes: int = 0  # the worker's writes that changed a ticket
    source_echo_writes: int = 0  # its writes that changed nothing
    source_writes_more: str = ""  # more about them (", 409 conflicts: 0")
    source_calls: dict[str, int] = field(default_factory=dict)
    source_minimum: tuple[int, str] = (0, "")  # the fewest calls, and why
    source_naive: tuple[int, str] = (0, "")  # a call per change, and what they are
    planhat_calls: dict[str, int] = field(default_factory=dict)
    rate_limited: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    mirror_echo_writes: tuple[int, int] = (0, 0)  # Planhat's, the helpdesk's, first mirror
    phases: dict[str, float] = field(default_factory=dict)  # seconds each step took

    def report(self) -> list[str]:
        s, name = self.size, self.name

        def lag(direction: str) -> str:
            values = sorted(self.lags[direction])
            if not values:
                return "none"
            p95 = values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]
            return (f"p50 {statistics.median(values):.1f} s, p95 {p95:.1f} s, "
                    f"max {values[-1]:.1f} s over {len(values)}")  # fmt: skip

        source_total = sum(self.source_calls.values())
        planhat_total = sum(self.planhat_calls.values())
        return [
            f"{s.tickets} tickets over {s.companies} companies; {s.change_seconds:.0f} s of "
            f"changes: {self.source_changes} in {name}, {self.planhat_changes} in Planhat",
            f"  first mirror: every ticket in Planhat {self.ingest_s:.1f} s after the first "
            f"was created; settled {self.settle_s:.1f} s after the last change",
            f"  both sides agree on {s.tickets - len(self.disagreements)} of {s.tickets} "
            f"tickets; changes not crossed: {len(self.not_crossed)}; dead letters: "
            f"{self.dead_letters}",
            f"  lag {name} -> Planhat: {lag('in')}",
            f"  lag Planhat -> {name}: {lag('out')}",
            f"  Planhat ticket writes: {self.planhat_ticket_writes} (needed: {s.tickets} "
            f"creations + {self.source_changes} changes), echo writes: "
            f"{self.planhat_echo_writes} ({self.mirror_echo_writes[0]} in the first mirror)",
            f"  {name} ticket writes: {self.source_writes} (needed: {self.planhat_changes}), "
            f"echo writes: {self.source_echo_writes}{self.source_writes_more}",
            f"  Planhat calls by the worker: {planhat_total} {sorted(self.planhat_calls.items())}",
            f"    minimum: {self.planhat_minimum()} (every write in one bulk call per burst: "
            f"the creations, the {name} changes; one read for the Planhat changes; one "
            "company directory read); naive, a call per change each way: "
            f"{s.tickets + self.source_changes + self.planhat_changes}",
            f"  {name} calls by the worker: {source_total} {sorted(self.source_calls.items())}",
            f"    minimum: {self.source_minimum[0]} ({self.source_minimum[1]}); naive, "
            f"{self.source_naive[1]}: {self.source_naive[0]}",
            f"  429s answered: {self.rate_limited}",
            "  seconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in self.phases.items()),
        ]  # fmt: skip

    def planhat_minimum(self) -> int:
        return 4


class Observer:
    """Reads Planhat with a token of its own and counts what it asked, to take it from the
    sandbox's counters."""

    def __init__(self, planhat_url: str, source: str) -> None:
        self.planhat = httpx.Client(base_url=planhat_url, timeout=30,
                                    headers={"authorization": "Bearer observer"})  # fmt: skip
        self.source = source
        self.planhat_calls: Counter[str] = Counter()

    def planhat_tickets(self) -> dict[str, dict[str, Any]]:
        """Planhat's tickets from the source, by sourceId."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            self.planhat_calls["GET /tickets"] += 1
            page = self.planhat.get("/tickets", params={"limit": PLANHAT_PAGE, "offset": offset})
            page.raise_for_status()
            records = page.json()
            for record in records:
                if record.get("source") == self.source:
                    found[str(record["sourceId"])] = record
            offset += len(records)
            if len(records) < PLANHAT_PAGE:
                return found

    def close(self) -> None:
        self.planhat.close()


def seed_companies(planhat_url: str, count: int, observer: Observer) -> None:
    companies = [
        {"sourceId": f"co-{i}", "name": f"Company {i}", "domains": [f"co{i}.example"],
         **({"externalId": f"ext-{i}"} if i % 2 == 0 else {})}
        for i in range(count)
    ]  # fmt: skip
    observer.planhat_calls["PUT /companies"] += 1
    observer.planhat.put("/companies", json=companies).raise_for_status()


@dataclass(slots=True)
class Change:
    side: str  # where it is made: "source" (the helpdesk) or "planhat"
    ticket: str
    status: str  # in Planhat's terms
    at: float  # seconds into the change window
    made: float = 0.0  # monotonic time it was made
    crossed: float | None = None


def plan_changes(keys: list[str], size: Size, statuses: tuple[str, ...]) -> list[Change]:
    """Disjoint sets: a ticket changes on one side only, once, at a random moment."""
    rng = random.Random(size.seed)
    shuffled = rng.sample(keys, len(keys))
    in_source = round(size.source_share * len(keys))
    in_planhat = round(size.planhat_share * len(keys))
    plan = [Change("source", t, rng.choice(statuses), rng.uniform(0, size.change_seconds))
            for t in shuffled[:in_source]]  # fmt: skip
    plan += [Change("planhat", t, rng.choice(statuses), rng.uniform(0, size.change_seconds))
             for t in shuffled[in_source : in_source + in_planhat]]  # fmt: skip
    return sorted(plan, key=lambda change: change.at)


def watch(
    observer: Observer,
    source_shows: Callable[[list[Change]], dict[str, str]],
    plan: list[Change],
    stop: threading.Event,
) -> None:
    """Marks each change crossed when the other side first shows it; ``source_shows``:
    the helpdesk's status (in Planhat's terms) of these changes' tickets."""
    while not stop.is_set():
        now_made = [c for c in plan if c.made and c.crossed is None]
        to_planhat = [c for c in now_made if c.side == "source"]
        to_source = [c for c in now_made if c.side == "planhat"]
        if to_planhat:
            tickets = observer.planhat_tickets()
            seen = time.monotonic()
            for c in to_planhat:
                if tickets.get(c.ticket, {}).get("status") == c.status:
                    c.crossed = seen
        if to_source:
            statuses = source_shows(to_source)
            seen = time.monotonic()
            for c in to_source:
                if statuses.get(c.ticket) == c.status:
                    c.crossed = seen
        stop.wait(0.5)


def quiet(planhat_url: str, source_url: str, database_url: str) -> bool:
    """Nothing on its way: no hint nor event undelivered, nothing pending or queued."""
    planhat = stand_in_http.get(f"{planhat_url}/_sandbox/stats", timeout=10).json()
    source = stand_in_http.get(f"{source_url}/_sandbox/stats", timeout=10).json()
    state = engine_state(database_url)
    return (planhat["automations"]["pending"] == 0 and source["webhook"]["pending"] == 0
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
