"""What the helpdesk two-way harnesses (``zendesk_two_way``, ``intercom_two_way``) share:
a helpdesk stand-in on a real socket beside the Planhat sandbox, the test's own client of
that stand-in, and the accounting of the API calls the worker made of each side. Each
source's harness adds how the test acts in that helpdesk and names its calls.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
from starlette.applications import Starlette

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox, BackgroundServer
from tests import stand_in_http
from tests.engine.embedded_harness import PLANHAT_SECRET, EngineHarness, running_engine
from worker.intake.poll import SourceApis
from worker.runtime.embedded import Sweeper
from worker.runtime.jobs import run_poll
from worker.runtime.settings import EngineSettings

COMPANY = {"name": "Acme", "externalId": "acme", "domains": ["acme.example"]}


@dataclass
class HelpdeskTwoWay(EngineHarness):
    stand_in: BackgroundServer  # the helpdesk's
    apis: SourceApis
    stand_in_api: httpx.Client  # the test's own, as another user or app (not counted)
    _ahead: list[float]  # seconds the stand-in's clock runs ahead of ours
    _planhat_base: Counter[str] = field(default_factory=Counter)
    _own: Counter[str] = field(default_factory=Counter)  # the test's own calls of the helpdesk

    drained_what: ClassVar[str] = "the helpdesk two-way engine"

    # --- the helpdesk side -----------------------------------------------------------------

    def count_own(self, route: str) -> None:
        """One of the test's own API calls, left out of ``calls``."""
        self._own[route] += 1

    def run_ahead(self, seconds: float) -> None:
        """Run the helpdesk's clock ahead: its stamps are whole seconds, so a change made
        there within the second of one made in Planhat would otherwise seem older."""
        self._ahead[0] = seconds

    def pause_webhook(self, paused: bool = True) -> None:
        self.stand_in_api.post("/_sandbox/webhook", json={"paused": paused}).raise_for_status()

    def stand_in_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.stand_in_api.get("/_sandbox/stats").json()
        return stats

    # --- the Planhat side ----------------------------------------------------------------

    def planhat_ticket(self, source_id: int | str) -> dict[str, Any]:
        found = [t for t in self.planhat.list("tickets") if t.get("sourceId") == str(source_id)]
        assert len(found) == 1, f"{len(found)} Planhat tickets have sourceId {source_id}"
        return found[0]

    def ui_edit(self, planhat_id: str, **fields: Any) -> None:
        """A CSM's edit in Planhat's UI (the ticket Automation fires)."""
        url = f"{self.sandbox.url}/_sandbox/ui/tickets/{planhat_id}"
        stand_in_http.post(url, json=fields).raise_for_status()

    def planhat_faults(self, **faults: Any) -> None:
        stand_in_http.post(f"{self.sandbox.url}/_sandbox/faults", json=faults).raise_for_status()

    # --- both ------------------------------------------------------------------------------

    def reset_calls(self) -> None:
        """Zero both stand-ins' call counters (a test's setup is not what it asserts)."""
        self.stand_in_api.post("/_sandbox/reset").raise_for_status()
        self._planhat_base = Counter(self.planhat_stats()["by_route"])
        self._own = Counter()

    def calls_of_each_side(self) -> tuple[dict[str, int], dict[str, int]]:
        """The API calls the worker made of the helpdesk and of Planhat since
        ``reset_calls`` (the test's own helpdesk calls left out). Planhat's sandbox counts
        the test's reads too (``planhat_ticket``): take this before reading."""
        helpdesk = dict(Counter(self.stand_in_stats()["by_route"]) - self._own)
        now = Counter(self.planhat_stats()["by_route"])
        return helpdesk, dict(now - self._planhat_base)

    def poll(self) -> int:
        """One poll of every feed (the helpdesk's), as beat runs it."""
        return run_poll(self.runtime, self.apis)

    def deliveries_pending(self) -> bool:
        hints = self.planhat_stats()["automations"]["pending"]
        hooks = self.stand_in_stats()["webhook"]["pending"]
        return bool(hints > 0 or hooks > 0)

    def mirror(self, source_id: int | str) -> str:
        """Once a ticket made in the helpdesk is mirrored to Planhat: its Planhat id, the
        counters zeroed after it."""
        self.drain()
        planhat_id = str(self.planhat_ticket(source_id)["_id"])
        self.reset_calls()
        return planhat_id


Harness = TypeVar("Harness", bound=HelpdeskTwoWay)


@dataclass(frozen=True)
class HelpdeskStandIn:
    """A helpdesk stand-in's app, not yet served, and how the engine reaches it."""

    app: Starlette
    source: str  # the receiver's path segment and the ``SourceApis`` field
    client_headers: Mapping[str, str]  # the test's own client's (another user or app)


@contextmanager
def helpdesk_two_way(
    harness: type[Harness],
    stand_in: HelpdeskStandIn,
    ahead: list[float],
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
    tmp_path: Path,
    *,
    config: EngineSettings,
    secrets: Mapping[str, str],
    options: Mapping[str, str],
    sandbox_config: Mapping[str, Any] | None,
    company: Mapping[str, Any] | None,
    paced: bool,
    sweeps: bool,
) -> Iterator[Harness]:
    """The helpdesk's stand-in, the Planhat sandbox whose ticket Automation POSTs to our
    receiver, and the embedded engine between them; ``company`` is created in Planhat
    first. ``sweeps``: beat's sweeps run (no polls: a test polls when it says so), for
    events due later."""
    served = BackgroundServer(stand_in.app)
    apis = SourceApis(**{stand_in.source: served.url})
    served.start()
    try:
        with running_engine(
            start_sandbox,
            tmp_path,
            config=config,
            apis=apis,
            automations=("tickets",),
            secrets={"planhat": PLANHAT_SECRET, **secrets},
            options=options,
            sandbox_config=sandbox_config,
            paced=paced,
        ) as running:
            # The helpdesk's webhook is configured once our receiver's address is known.
            webhook = f"{running.receiver.url}/webhooks/default/{stand_in.source}"
            stand_in.app.state.sandbox.webhook.url = webhook
            sweeper = Sweeper(running.runtime, config.sweep_interval) if sweeps else None
            if sweeper is not None:
                sweeper.start()
            client = httpx.Client(base_url=served.url, headers=dict(stand_in.client_headers))
            try:
                if company is not None:
                    running.planhat.create("companies", company)
                yield harness(
                    **running.parts(),
                    stand_in=served,
                    apis=apis,
                    stand_in_api=client,
                    _ahead=ahead,
                )
            finally:
                client.close()
                if sweeper is not None:
                    sweeper.stop()
                    sweeper.join(timeout=5)
    finally:
        served.stop()


def wait_past(stamp: float, what: str, timeout: float = 5.0) -> None:
    """Until our clock is past ``stamp`` (seconds), or an AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.time() <= stamp:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} stays in the future")
        time.sleep(0.05)
