"""A helpdesk ⇄ Planhat end to end on PostgreSQL + Redis: one run, at any size, for any
helpdesk source given as a ``Helpdesk`` (``tests/engine/zendesk_e2e.py``,
``tests/engine/intercom_e2e.py``).

The deployment runs as it would in production, every part a process of its own: the
receiver (``web``), two workers and beat, the Planhat sandbox (its Automation on tickets
POSTing to the receiver) and the helpdesk's stand-in (its signed webhook POSTing to the
receiver). A run:

1. puts the companies in Planhat (one bulk call), half of them with an ``externalId``
   that the helpdesk's companies carry, the others found by their requesters' domain;
2. creates the tickets in the helpdesk (through its API, as another user or app) and
   waits until Planhat holds every one;
3. for ``change_seconds``, at random moments, changes the status of ``source_share`` of
   the tickets in the helpdesk (an agent in its UI) and of ``planhat_share`` of the others
   in Planhat (a CSM in its UI, which fires the Automation), and watches each change
   reach the other side;
4. waits until nothing moves, then compares both sides ticket by ticket and reads the
   stand-ins' counters: the writes that changed something, those that changed nothing
   (echoes), and the calls the worker made, against the fewest a sync could make.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx

from tests import stand_in_http
from tests.engine.harness import RedisServer, engine_state, free_port, fresh_deployment, wait_until
from tests.engine.helpdesk_workload import (
    Change,
    Observer,
    Outcome,
    Size,
    plan_changes,
    quiet,
    seed_companies,
    watch,
)
from worker.cli.dev import SandboxProcess
from worker.cli.stand_in import StandInProcess

__all__ = ["Helpdesk", "Outcome", "Size", "run"]

HINT_SECRET = "planhat-automation-secret-e2e"  # a test's own
START_S = 60.0  # for a stand-in to answer


class Helpdesk(Protocol):
    """One helpdesk source's part of the run: its stand-in and how to act on and read it."""

    @property
    def name(self) -> str:
        """As the report says it: "Zendesk"."""
        ...

    @property
    def source(self) -> str:
        """The Planhat tickets' ``source``: "zendesk"."""
        ...

    @property
    def statuses(self) -> tuple[str, ...]:
        """The Planhat statuses a change moves a ticket to."""
        ...

    @property
    def stand_in(self) -> StandInProcess: ...

    def engine_env(self) -> dict[str, str]:
        """The ``default`` connection's settings for this source (its secrets, API base)."""
        ...

    def create_tickets(self, size: Size) -> list[str]:
        """The tickets, made through the helpdesk's API; their keys (Planhat ``sourceId``)."""
        ...

    def ui_edit(self, ui: httpx.Client, key: str, status: str) -> None:
        """An agent moves the ticket to (the helpdesk's form of) the Planhat ``status``."""
        ...

    def read(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The tickets as the helpdesk holds them now, by key (the observer's own calls)."""
        ...

    def status(self, ticket: Mapping[str, Any]) -> str:
        """A ticket's status in Planhat's terms."""
        ...

    def differs(self, ticket: Mapping[str, Any], record: Mapping[str, Any]) -> str | None:
        """How the ticket and its Planhat record disagree; None when they agree."""
        ...

    def count(self, outcome: Outcome, stats: Mapping[str, Any]) -> None:
        """Its stand-in's counters into ``outcome`` (``source_*``)."""
        ...

    def close(self) -> None: ...


def run(
    make: Callable[[str], Helpdesk],
    size: Size,
    redis: RedisServer,
    logs: Path,
    engine_env: dict[str, str] | None = None,
) -> Outcome:
    """One run at ``size`` of the helpdesk ``make`` gives for the receiver's webhook base
    (``http://…/webhooks/default``; its stand-in adds its source's name). Every process it
    starts is stopped before it returns. ``engine_env``: more settings for the receiver,
    workers and beat."""
    web = free_port()
    receiver = f"http://127.0.0.1:{web}/webhooks/default"
    helpdesk = make(receiver)
    outcome = Outcome(size, helpdesk.name)
    began = time.monotonic()
    planhat = SandboxProcess(logs / "planhat.db", port=free_port(),
                             automation=([f"tickets={receiver}/planhat"], HINT_SECRET))  # fmt: skip
    # Both start while the deployment does (each process takes seconds to import; on a
    # loaded 2-core machine, the six of them together took up to 30 s).
    starting = [threading.Thread(target=s.start, kwargs={"timeout": START_S})
                for s in (planhat, helpdesk.stand_in)]  # fmt: skip
    for thread in starting:
        thread.start()
    try:
        _run(helpdesk, size, outcome, planhat, redis, logs, web, starting, engine_env or {})
    finally:
        for thread in starting:
            thread.join()
        helpdesk.close()
        helpdesk.stand_in.stop()
        planhat.stop()
    outcome.phases["all"] = time.monotonic() - began
    return outcome


def _run(
    helpdesk: Helpdesk,
    size: Size,
    outcome: Outcome,
    planhat: SandboxProcess,
    redis: RedisServer,
    logs: Path,
    web: int,
    starting: list[threading.Thread],
    engine_env: dict[str, str],
) -> None:
    env = {
        **helpdesk.engine_env(),
        "PLANHAT_WEBHOOK_SECRET": HINT_SECRET,
        "PLANHAT_SYNC_FLUSH_LINGER": "1",  # a change waits about a second to be batched
        # Nothing is killed here: the production default, not the harness's 5 s (which
        # sends an event waiting its turn in a long queue again, and reads its ticket twice).
        "PLANHAT_SYNC_LOST_AFTER": "120",
        **engine_env,
    }
    observer = Observer(planhat.url, helpdesk.source)
    source_url = helpdesk.stand_in.url
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
            _ready(f"{source_url}/_sandbox/stats", raise_=True)
            seed_companies(planhat.url, size.companies, observer)
            wait_until(lambda: _ready(f"http://127.0.0.1:{web}/healthz"), timeout=30,
                       what="the receiver")  # fmt: skip
            step("start")
            started = time.monotonic()
            keys = helpdesk.create_tickets(size)
            step("create")
            wait_until(lambda: len(observer.planhat_tickets()) >= size.tickets,
                       timeout=60 + size.tickets * 0.3, what="every ticket in Planhat",
                       every=0.5)  # fmt: skip
            outcome.ingest_s = time.monotonic() - started
            step("mirror")
            wait_until(lambda: quiet(planhat.url, source_url, system.database_url),
                       timeout=120, what="the first mirror to settle", every=0.5)  # fmt: skip
            step("quiet")
            outcome.mirror_echo_writes = _echo_writes(planhat.url, source_url)
            _change(helpdesk, size, outcome, observer, planhat.url, system.database_url)
            step("changes")
            _count(helpdesk, outcome, observer, planhat.url, keys)
            outcome.dead_letters = engine_state(system.database_url)["dead"]
            step("count")
        step("stop")
    finally:
        observer.close()


def _stats(url: str) -> dict[str, Any]:
    stats: dict[str, Any] = stand_in_http.get(f"{url}/_sandbox/stats", timeout=10).json()
    return stats


def _echo_writes(planhat_url: str, source_url: str) -> tuple[int, int]:
    planhat = _stats(planhat_url)
    return planhat["unchanged_writes"].get("tickets", 0), _stats(source_url)["unchanged_writes"]


def _ready(url: str, *, raise_: bool = False) -> bool:
    try:
        return stand_in_http.get(url, timeout=2).is_success
    except httpx.TransportError:
        if raise_:  # a stand-in that did not start (its thread said why)
            raise
        return False


def _change(helpdesk: Helpdesk, size: Size, outcome: Outcome, observer: Observer,
            planhat_url: str, database_url: str) -> None:  # fmt: skip
    ids_by_key = {key: record["_id"] for key, record in observer.planhat_tickets().items()}
    plan = plan_changes(list(ids_by_key), size, helpdesk.statuses)
    outcome.source_changes = sum(c.side == "source" for c in plan)
    outcome.planhat_changes = sum(c.side == "planhat" for c in plan)
    stop = threading.Event()

    def shown(changes: list[Change]) -> dict[str, str]:
        tickets = helpdesk.read([c.ticket for c in changes])
        return {key: helpdesk.status(ticket) for key, ticket in tickets.items()}

    watcher = threading.Thread(target=watch, args=(observer, shown, plan, stop), daemon=True)
    watcher.start()
    begin = time.monotonic()
    source_url = helpdesk.stand_in.url
    try:
        with httpx.Client(timeout=30) as ui:
            for change in plan:
                time.sleep(max(0.0, begin + change.at - time.monotonic()))
                change.made = time.monotonic()
                if change.side == "source":  # an agent in the helpdesk's UI
                    helpdesk.ui_edit(ui, change.ticket, change.status)
                else:  # a CSM in Planhat's UI: its Automation fires
                    url = f"{planhat_url}/_sandbox/ui/tickets/{ids_by_key[change.ticket]}"
                    ui.post(url, json={"status": change.status}).raise_for_status()
        last = time.monotonic()
        deadline = last + 120 + size.tickets * 0.1
        while time.monotonic() < deadline:
            if all(c.crossed for c in plan) and quiet(planhat_url, source_url, database_url):
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
            outcome.lags["in" if c.side == "source" else "out"].append(c.crossed - c.made)


def _count(helpdesk: Helpdesk, outcome: Outcome, observer: Observer, planhat_url: str,
           keys: list[str]) -> None:  # fmt: skip
    in_planhat = observer.planhat_tickets()
    in_source = helpdesk.read(keys)
    for key in keys:
        ticket, record = in_source.get(key), in_planhat.get(key)
        if ticket is None or record is None:
            outcome.disagreements.append(f"{key}: missing on one side")
        elif (differs := helpdesk.differs(ticket, record)) is not None:
            outcome.disagreements.append(f"{key}: {differs}")
    planhat = _stats(planhat_url)
    source = _stats(helpdesk.stand_in.url)
    outcome.planhat_ticket_writes = planhat["record_writes"].get("tickets", 0)
    outcome.planhat_echo_writes = planhat["unchanged_writes"].get("tickets", 0)
    outcome.source_writes = source["api_writes"]
    outcome.source_echo_writes = source["unchanged_writes"]
    helpdesk.count(outcome, source)
    calls = Counter(planhat["by_route"]) - observer.planhat_calls
    outcome.planhat_calls = {route: n for route, n in calls.items() if n}
    outcome.rate_limited = {"planhat": planhat["rate_limited"],
                            helpdesk.source: source["rate_limited"]}  # fmt: skip
