"""Both directions on the embedded engine (SQLite): a receiver on a real socket, the
Planhat sandbox whose Automations POST their hints to that receiver, and a source that
writes back to a local fake receiver (``tests/outbound.py``).

    with two_way(start_sandbox, tmp_path, outbound=receiver.url) as sync:
        sync.send("tasks", "t-1", 1, {...})       # a signed standard webhook, in
        sync.drain()                              # until nothing moves any more
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.standard.verify import signed_headers
from tests import stand_in_http
from tests.engine.embedded_harness import FAST, PLANHAT_SECRET, EngineHarness, running_engine
from worker.intake.poll import SourceApis
from worker.runtime.settings import EngineSettings

__all__ = ["FAST", "PLANHAT_SECRET", "STANDARD_SECRET", "TwoWay", "two_way"]

STANDARD_SECRET = "whsec_" + base64.b64encode(b"two-way-standard-secret!").decode()


@dataclass
class TwoWay(EngineHarness):
    _ids: Iterator[int] = field(default_factory=itertools.count)

    drain_timeout: ClassVar[float] = 60
    drain_pause: ClassVar[float] = 0.1
    drained_what: ClassVar[str] = "the two-way engine"

    def send(
        self, model: str, key: str, version: int, fields: Mapping[str, Any], **extra: Any
    ) -> httpx.Response:
        """A signed standard event into the receiver."""
        body = json.dumps(
            {"model": model, "key": {"sourceId": key}, "fields": fields, "version": version} | extra
        ).encode()
        headers = signed_headers(STANDARD_SECRET, f"in-{next(self._ids)}", body, int(time.time()))
        return stand_in_http.post(
            f"{self.receiver.url}/webhooks/default/standard", content=body, headers=headers
        )

    def hint(self, body: Any, secret: str = PLANHAT_SECRET) -> httpx.Response:
        """A Planhat Automation's webhook, as the admin's template sends it."""
        return stand_in_http.post(
            f"{self.receiver.url}/webhooks/default/planhat",
            json=body,
            headers={"authorization": f"Bearer {secret}"},
        )

    def ui_edit(self, model: str, planhat_id: str, fields: Mapping[str, Any]) -> None:
        edited = stand_in_http.post(
            f"{self.sandbox.url}/_sandbox/ui/{model}/{planhat_id}", json=fields
        )
        edited.raise_for_status()

    def stats(self) -> dict[str, Any]:
        return self.planhat_stats()


@contextmanager
def two_way(
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
    tmp_path: Path,
    *,
    automations: tuple[str, ...] = (),
    options: Mapping[str, str] | None = None,
    config: EngineSettings = FAST,
    sandbox_config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    apis: SourceApis | None = None,
) -> Iterator[TwoWay]:
    """The embedded engine with a receiver on a socket; the sandbox's Automations on
    ``automations`` POST to that receiver (bearer ``PLANHAT_SECRET``). ``secrets`` and
    ``apis``: more sources' secrets, and where their APIs are (stand-ins)."""
    with running_engine(
        start_sandbox,
        tmp_path,
        config=config,
        apis=apis or SourceApis(),
        automations=automations,
        secrets={"standard": STANDARD_SECRET, "planhat": PLANHAT_SECRET, **(secrets or {})},
        options=options or {},
        sandbox_config=sandbox_config,
    ) as running:
        yield TwoWay(**running.parts())
