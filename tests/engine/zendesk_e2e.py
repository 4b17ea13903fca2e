"""Zendesk ⇄ Planhat end to end on PostgreSQL + Redis: one run, at any size.

The deployment runs as it would in production, every part a process of its own: the
receiver (``web``), two workers and beat, the Planhat sandbox (its Automation on tickets
POSTing to the receiver) and the Zendesk stand-in (its signed event webhook POSTing to
the receiver). A run:

1. puts the companies in Planhat (one bulk call), half of them with an ``externalId``
   that a Zendesk organization carries, the others found by their requesters' domain;
2. creates the tickets in Zendesk (through its API, as agents) and waits until Planhat
   holds every one;
3. for ``change_seconds``, at random moments, changes the status of ``zendesk_share`` of
   the tickets in Zendesk (an agent in its UI) and of ``planhat_share`` of the others in
   Planhat (a CSM in its UI, which fires the Automation), and watches each change reach
   the other side;
4. waits until nothing moves, then compares both sides ticket by ticket and reads the
   stand-ins' counters: the writes that changed something, those that changed nothing
   (echoes), and the calls the worker made, against the fewest a sync could make.

``tests/engine/test_e2e_zendesk.py`` runs it small in CI (and full with
PLANHAT_SYNC_ZENDESK_E2E_FULL=1); ``bench/bench_zendesk.py`` runs it full and prints it.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.engine.harness import (
    RedisServer,
    engine_state,
    free_port,
    fresh_deployment,
    wait_until,
)
from tests.engine.zendesk_workload import (
    AGENTS,
    FULL,
    SMALL,
    Observer,
    Size,
    create_tickets,
    plan_changes,
    quiet,
    seed_companies,
    watch,
)
from worker.cli.dev import SandboxProcess
from worker.cli.dev_zendesk import AGENT_EMAIL, ZendeskStandIn

__all__ = ["FULL", "SMALL", "Outcome", "Size", "run"]

HINT_SECRET = "planhat-automation-secret-e2e"  # a test's own


@dataclass(slots=True)
class Outcome:
    size: Size
    ingest_s: float = 0.0
    settle_s: float = 0.0
    disagreements: list[str] = field(default_factory=list)
    zendesk_changes: int = 0
    planhat_changes: int = 0
    lags: dict[str, list[float]] = field(default_factory=lambda: {"zd->ph": [], "ph->zd": []})
    not_crossed: list[str] = field(default_factory=list)
    planhat_ticket_writes: int = 0  # records created or changed by the worker's bulk upserts
    planhat_echo_writes: int = 0  # records it wrote as they were
    zendesk_writes: int = 0  # the worker's PUTs that changed a ticket
    zendesk_echo_writes: int = 0  # its PUTs that changed nothing
    zendesk_calls: dict[str, int] = field(default_factory=dict)
    planhat_calls: dict[str, int] = field(default_factory=dict)
    zendesk_conflicts: int = 0
    rate_limited: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    mirror_echo_writes: tuple[int, int] = (0, 0)  # Planhat's, Zendesk's after the first mirror
    phases: dict[str, float] = field(default_factory=dict)  # seconds each step took

    def report(self) -> list[str]:
        s = self.size

        def lag(direction: str) -> str:
            values = sorted(self.lags[direction])
            if not values:
                return "none"
            p95 = values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]
            return (f"p50 {statistics.median(values):.1f} s, p95 {p95:.1f} s, "
                    f"max {values[-1]:.1f} s over {len(values)}")  # fmt: skip

        zendesk_total = sum(self.zendesk_calls.values())
        planhat_total = sum(self.planhat_calls.values())
        return [
            f"{s.tickets} tickets over {s.companies} companies; {s.change_seconds:.0f} s of "
            f"changes: {self.zendesk_changes} in Zendesk, {self.planhat_changes} in Planhat",
            f"  first mirror: every ticket in Planhat {self.ingest_s:.1f} s after the first "
            f"was created; settled {self.settle_s:.1f} s after the last change",
            f"  both sides agree on {s.tickets - len(self.disagreements)} of {s.tickets} "
            f"tickets; changes not crossed: {len(self.not_crossed)}; dead letters: "
            f"{self.dead_letters}",
            f"  lag Zendesk -> Planhat: {lag('zd->ph')}",
            f"  lag Planhat -> Zendesk: {lag('ph->zd')}",
            f"  Planhat ticket writes: {self.planhat_ticket_writes} (needed: {s.tickets} "
            f"creations + {self.zendesk_changes} changes), echo writes: "
            f"{self.planhat_echo_writes} ({self.mirror_echo_writes[0]} in the first mirror)",
            f"  Zendesk ticket writes: {self.zendesk_writes} (needed: {self.planhat_changes}), "
            f"echo writes: {self.zendesk_echo_writes}, 409 conflicts: {self.zendesk_conflicts}",
            f"  Planhat calls by the worker: {planhat_total} {sorted(self.planhat_calls.items())}",
            f"    minimum: {self.planhat_minimum()} (every write in one bulk call per burst: "
            "the creations, the Zendesk changes; one read for the Planhat changes; one "
            "company directory read); naive, a call per change each way: "
            f"{s.tickets + self.zendesk_changes + self.planhat_changes}",
            f"  Zendesk calls by the worker: {zendesk_total} {sorted(self.zendesk_calls.items())}",
            f"    minimum: {self.zendesk_minimum()} (a PUT per Planhat change, Zendesk has no "
            "bulk safe_update; one export page for the tickets' requesters); naive, a read "
            "per webhook event (our writes' echoes included) and a read and a PUT per "
            f"Planhat change: {s.tickets + self.zendesk_changes + 3 * self.planhat_changes}",
            f"  429s answered: {self.rate_limited}",
            "  seconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in self.phases.items()),
        ]  # fmt: skip

    def planhat_minimum(self) -> int:
        return 4

    def zendesk_minimum(self) -> int:
        return self.planhat_changes + math.ceil(self.size.tickets / 1000)


def run(
    size: Size, redis: RedisServer, logs: Path, engine_env: dict[str, str] | None = None
) -> Outcome:
    """One run at ``size``; every process it starts is stopped before it returns.
    ``engine_env``: more settings for the receiver, workers and beat."""
    outcome = Outcome(size)
    began = time.monotonic()
    web = free_port()
    receiver = f"http://127.0.0.1:{web}/webhooks/default"
    planhat = SandboxProcess(logs / "planhat.db", port=free_port(),
                             automation=([f"tickets={receiver}/planhat"], HINT_SECRET))  # fmt: skip
    zendesk = ZendeskStandIn(free_port(), f"{receiver}/zendesk", agents=AGENTS)
    # Both start while the deployment does (each process takes seconds to import).
    starting = [threading.Thread(target=stand_in.start) for stand_in in (planhat, zendesk)]
    for thread in starting:
        thread.start()
    try:
        _run(size, outcome, planhat, zendesk, redis, logs, web, starting, engine_env or {})
    finally:
        for thread in starting:
            thread.join()
        zendesk.stop()
        planhat.stop()
    outcome.phases["all"] = time.monotonic() - began
    return outcome


def _run(
    size: Size,
    outcome: Outcome,
    planhat: SandboxProcess,
    zendesk: ZendeskStandIn,
    redis: RedisServer,
    logs: Path,
    web: int,
    starting: list[threading.Thread],
    engine_env: dict[str, str],
) -> None:
    secrets = zendesk.secrets()
    env = {
        "ZENDESK_WEBHOOK_SECRET": secrets["zendesk"],
        "ZENDESK_SUBDOMAIN": secrets["zendesk:subdomain"],
        "ZENDESK_EMAIL": secrets["zendesk:email"],
        "ZENDESK_API_TOKEN": secrets["zendesk:api_token"],
        "ZENDESK_API_BASE": zendesk.url,
        "PLANHAT_WEBHOOK_SECRET": HINT_SECRET,
        "PLANHAT_SYNC_FLUSH_LINGER": "1",  # a change waits about a second to be batched
        # Nothing is killed here: the production default, not the harness's 5 s (which
        # sends an event waiting its turn in a long queue again, and reads its ticket twice).
        "PLANHAT_SYNC_LOST_AFTER": "120",
        **engine_env,
    }
    observer = Observer(planhat.url, zendesk)
    clock = time.monotonic()

    def step(name: str) -> None:
        nonlocal clock
        outcome.phases[name] = time.monotonic() - clock
        clock = time.monotonic()

    try:
        with fresh_deployment(redis, planhat.url, logs, env_extra=env) as system:
            system.start("web", "web", "--port", str(web))
            system.start_worker("worker-1")
            system.start_worker("worker-2")
            system.start("beat", "beat", "--loglevel", "warning")
            for thread in starting:
                thread.join()
            _ready(f"{planhat.url}/_sandbox/stats", raise_=True)
            _ready(f"{zendesk.url}/_sandbox/stats", raise_=True)
            seed_companies(planhat.url, size.companies, observer)
            wait_until(lambda: _ready(f"http://127.0.0.1:{web}/healthz"), timeout=30,
                       what="the receiver")  # fmt: skip
            step("start")
            started = time.monotonic()
            ids = create_tickets(zendesk, size.tickets, size.companies)
            step("create")
            wait_until(lambda: len(observer.planhat_tickets()) >= size.tickets,
                       timeout=60 + size.tickets * 0.3, what="every ticket in Planhat",
                       every=0.5)  # fmt: skip
            outcome.ingest_s = time.monotonic() - started
            step("mirror")
            wait_until(lambda: quiet(planhat.url, zendesk.url, system.database_url),
                       timeout=120, what="the first mirror to settle", every=0.5)  # fmt: skip
            step("quiet")
            outcome.mirror_echo_writes = _echo_writes(planhat.url, zendesk.url)
            _change(size, outcome, observer, planhat.url, zendesk.url, system.database_url)
            step("changes")
            _count(outcome, observer, planhat.url, zendesk.url, ids)
            outcome.dead_letters = engine_state(system.database_url)["dead"]
            step("count")
        step("stop")
    finally:
        observer.close()


def _echo_writes(planhat_url: str, zendesk_url: str) -> tuple[int, int]:
    planhat = httpx.get(f"{planhat_url}/_sandbox/stats", timeout=10).json()
    zendesk = httpx.get(f"{zendesk_url}/_sandbox/stats", timeout=10).json()
    return planhat["unchanged_writes"].get("tickets", 0), zendesk["unchanged_writes"]


def _ready(url: str, *, raise_: bool = False) -> bool:
    try:
        return httpx.get(url, timeout=2).is_success
    except httpx.TransportError:
        if raise_:  # a stand-in that did not start (its thread said why)
            raise
        return False


def _change(size: Size, outcome: Outcome, observer: Observer, planhat_url: str,
            zendesk_url: str, database_url: str) -> None:  # fmt: skip
    ids_by_key = {key: record["_id"] for key, record in observer.planhat_tickets().items()}
    plan = plan_changes([int(k) for k in ids_by_key], size)
    outcome.zendesk_changes = sum(c.side == "zendesk" for c in plan)
    outcome.planhat_changes = sum(c.side == "planhat" for c in plan)
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(observer, plan, stop), daemon=True)
    watcher.start()
    begin = time.monotonic()
    try:
        with httpx.Client(timeout=30) as ui:
            for change in plan:
                time.sleep(max(0.0, begin + change.at - time.monotonic()))
                if change.side == "zendesk":  # an agent in Zendesk's UI
                    url = f"{zendesk_url}/_sandbox/ui/tickets/{change.ticket}"
                else:  # a CSM in Planhat's UI: its Automation fires
                    url = f"{planhat_url}/_sandbox/ui/tickets/{ids_by_key[str(change.ticket)]}"
                change.made = time.monotonic()
                ui.post(url, json={"status": change.status}).raise_for_status()
        last = time.monotonic()
        deadline = last + 120 + size.tickets * 0.1
        while time.monotonic() < deadline:
            if all(c.crossed for c in plan) and quiet(planhat_url, zendesk_url, database_url):
                break
            time.sleep(1.0)
        outcome.settle_s = time.monotonic() - last
    finally:
        stop.set()
        watcher.join(timeout=30)
    for c in plan:
        if c.crossed is None:
            outcome.not_crossed.append(f"{c.side} ticket {c.ticket} -> {c.status}")
        else:
            outcome.lags["zd->ph" if c.side == "zendesk" else "ph->zd"].append(c.crossed - c.made)


def _count(outcome: Outcome, observer: Observer, planhat_url: str, zendesk_url: str,
           ids: list[int]) -> None:  # fmt: skip
    in_planhat = observer.planhat_tickets()
    in_zendesk = observer.zendesk_tickets(ids)
    for ticket_id in ids:
        zd, ph = in_zendesk.get(ticket_id), in_planhat.get(str(ticket_id))
        if zd is None or ph is None:
            outcome.disagreements.append(f"{ticket_id}: missing on one side")
        elif (zd["status"], zd["priority"]) != (ph.get("status"), ph.get("severity")):
            outcome.disagreements.append(
                f"{ticket_id}: zendesk {zd['status']}/{zd['priority']}, planhat "
                f"{ph.get('status')}/{ph.get('severity')}"
            )
    planhat = httpx.get(f"{planhat_url}/_sandbox/stats", timeout=10).json()
    zendesk = httpx.get(f"{zendesk_url}/_sandbox/stats", timeout=10).json()
    outcome.planhat_ticket_writes = planhat["record_writes"].get("tickets", 0)
    outcome.planhat_echo_writes = planhat["unchanged_writes"].get("tickets", 0)
    outcome.zendesk_writes = zendesk["api_writes"]
    outcome.zendesk_echo_writes = zendesk["unchanged_writes"]
    outcome.zendesk_conflicts = zendesk["conflicts"]
    outcome.zendesk_calls = dict(zendesk["by_user"].get(AGENT_EMAIL, {}))
    calls = Counter(planhat["by_route"]) - observer.planhat_calls
    outcome.planhat_calls = {route: n for route, n in calls.items() if n}
    outcome.rate_limited = {"planhat": planhat["rate_limited"], "zendesk": zendesk["rate_limited"]}
