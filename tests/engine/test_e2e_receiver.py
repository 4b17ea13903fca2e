"""Production's intake end to end: signed events posted over HTTP to ``planhat-sync web``
(2 processes) on PostgreSQL, handed to 2 ``planhat-sync worker`` processes through Redis,
into the Planhat sandbox. No beat runs: nothing reaches Planhat unless the receiver's own
enqueue scheduled it (the sweeper would hide a broken one)."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.standard.verify import signed_headers
from state.db import make_engine, session_scope
from state.tables import InboxEvent
from tests import stand_in_http
from tests.engine.harness import (
    RedisServer,
    drained,
    engine_state,
    free_port,
    fresh_deployment,
    standard,
    wait_until,
)

SECRET = "whsec_" + base64.b64encode(b"e2e-receiver-secret-0000").decode()
COMPANIES, VERSIONS = 30, 3


def ready(url: str) -> bool:
    try:
        return stand_in_http.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def stored(database_url: str) -> dict[int, tuple[str, bytes]]:
    """Inbox rows by id: (event id, body)."""
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            rows = session.exec(select(InboxEvent.id, InboxEvent.event_id, InboxEvent.body))
            return {inbox_id or 0: (event_id, body) for inbox_id, event_id, body in rows}
    finally:
        engine.dispose()


@pytest.mark.timeout(120)  # its own waits have deadlines
def test_events_posted_to_the_receiver_are_stored_then_reach_planhat_exactly_once(
    redis_server: RedisServer,
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
    tmp_path: Path,
) -> None:
    sandbox = start_sandbox(SandboxConfig(rate_per_minute=1e9, burst=10**6))
    env = {"STANDARD_WEBHOOK_SECRET": SECRET, "PLANHAT_SYNC_FLUSH_LINGER": "0.2"}
    with fresh_deployment(redis_server, sandbox.url, tmp_path, env_extra=env) as system:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        system.start("web", "web", "--port", str(port), "--workers", "2")
        system.start_worker("worker-1")
        system.start_worker("worker-2")
        wait_until(lambda: ready(url), timeout=60, what="the receiver to be ready")

        # when every version of 30 companies is posted, signed, in any order
        events = [
            (f"evt-{i}-{v}", standard("companies", f"co_{i}", v, {"name": f"Company {i} v{v}"}))
            for i in range(COMPANIES)
            for v in range(1, VERSIONS + 1)
        ]
        random.Random(5).shuffle(events)
        accepted: dict[int, tuple[str, bytes]] = {}
        with httpx.Client(base_url=url, timeout=10) as http:

            def post(event_id: str, body: bytes) -> httpx.Response:
                headers = signed_headers(SECRET, event_id, body, int(time.time()))
                return http.post("/webhooks/default/standard", content=body, headers=headers)

            for event_id, body in events:
                answer = post(event_id, body)
                assert answer.status_code == 202, answer.text
                accepted[answer.json()["inbox_id"]] = (event_id, body)
            # and some are delivered a second time
            again = [post(event_id, body) for event_id, body in events[:10]]

        # then each is in PostgreSQL once, under the id its answer gave, as it was sent
        assert stored(system.database_url) == accepted
        assert [answer.status_code for answer in again] == [200] * 10
        assert [answer.json()["status"] for answer in again] == ["duplicate"] * 10

        # and then in Planhat, exactly once, at its newest version
        wait_until(lambda: drained(system.database_url), timeout=60, what="the engine to drain")
        with PlanhatClient("check", base_url=sandbox.url) as planhat:
            companies = list(planhat.list("companies"))
        names = {company["sourceId"]: company["name"] for company in companies}
        assert len(companies) == COMPANIES
        assert names == {f"co_{i}": f"Company {i} v{VERSIONS}" for i in range(COMPANIES)}
        assert engine_state(system.database_url)["dead"] == 0
        for name in ("web", "worker-1", "worker-2"):
            assert "Traceback" not in system.log(name), system.log(name)
