"""Both directions busy on one token: the reverse path's reads of Planhat take their turn in
the same budget as the flushes, so a sandbox limited like Planhat (200 a minute, bursts of
50) answers almost nothing 429."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests.engine.two_way import FAST, two_way
from tests.outbound import OutboundReceiver
from worker.runtime.settings import EngineSettings

Start = Callable[[SandboxConfig], BackgroundSandbox]
SECONDS = 30
TASKS = 50


@pytest.fixture
def receiver() -> Iterator[OutboundReceiver]:
    with OutboundReceiver() as server:
        yield server


@pytest.mark.timeout(240)  # 30 s of traffic, then the backlog drains; waits have deadlines
def test_reverse_reads_share_the_tokens_budget_and_almost_nothing_is_429(
    start_sandbox: Start, tmp_path: Path, receiver: OutboundReceiver
) -> None:
    # the engine's defaults: a little under Planhat's 200 a minute and bursts of 50
    config = EngineSettings(**{**FAST.model_dump(), "rate_per_minute": 180, "burst": 40,
                               "flush_linger": 0.25})  # fmt: skip
    options = {"standard.outbound_url": receiver.url, "standard.outbound_models": "tasks"}
    limited = {"rate_per_minute": 200.0, "burst": 50}
    with two_way(
        start_sandbox,
        tmp_path,
        automations=("tasks",),
        options=options,
        config=config,
        sandbox_config=limited,
    ) as sync:
        assert sync.send("companies", "co-1", 1, {"name": "Acme"}).status_code == 202
        for n in range(TASKS):
            fields = {"mainType": "task", "companyId": "srcid-co-1", "action": "A", "status": "a"}
            assert sync.send("tasks", f"t-{n}", 1, fields).status_code == 202
        sync.drain(timeout=120)
        ids = {link.key_value: link.planhat_id or "" for link in sync.links().values()}

        # when, for 30 s, the source changes tasks and people edit them in Planhat
        rng = random.Random(14)
        started, version = time.monotonic(), 1
        while time.monotonic() - started < SECONDS:
            version += 1
            key = f"t-{rng.randrange(TASKS)}"
            assert sync.send("tasks", key, version, {"action": f"A{version}"}).status_code == 202
            if version % 3 == 0:
                sync.ui_edit("tasks", ids[f"t-{rng.randrange(TASKS)}"], {"status": f"s{version}"})
            time.sleep(0.15)
        sync.drain(timeout=150)
        stats = sync.stats()

    calls = stats["requests"]
    reads = stats["by_route"].get("GET /tasks/:id", 0) + stats["by_route"].get("GET /tasks", 0)
    assert reads >= 20  # the reverse path was busy reading
    assert stats["by_route"]["PUT /tasks"] >= 20  # and the flush writing
    assert stats["rate_limited"] <= 0.01 * calls, stats
    assert receiver.ok()  # edits went back out
