"""``planhat-sync mcp`` as a desktop client starts it: a subprocess speaking MCP on stdio,
on the state store of DATABASE_URL, Planhat from PLANHAT_API_TOKEN/PLANHAT_BASE_URL and
the shared Redis budget of REDIS_URL."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import redis
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.db import migrate
from tests.engine.services import TEST_REDIS_URL
from worker.runtime.ratelimit import budget_key

TOKEN = "stdio-token"


def test_planhat_sync_mcp_serves_the_tools_on_stdio_and_writes_when_allowed(
    tmp_path: Path, sandbox: BackgroundSandbox, redis_client: redis.Redis
) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    with PlanhatClient(TOKEN, base_url=sandbox.url) as planhat:
        acme = planhat.create("companies", {"name": "Acme", "sourceId": "acme"})["_id"]
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": TEST_REDIS_URL,
           "PLANHAT_API_TOKEN": TOKEN, "PLANHAT_BASE_URL": sandbox.url,
           # one call a minute: the budget's mark in Redis outlives the test (60 s)
           "PLANHAT_SYNC_RATE_PER_MINUTE": "1"}  # fmt: skip
    env.pop("PLANHAT_SYNC_MCP_WRITES", None)
    command = str(Path(sys.executable).parent / "planhat-sync")

    def session(*args: str) -> Any:
        async def main() -> Any:
            server = StdioServerParameters(command=command, args=["mcp", *args], env=env)
            async with Client(server) as client:
                count = len((await client.list_tools()).tools)
                update = {"id": acme, "data": {"name": "Acme Inc"}, "dry_run": False}
                return count, await client.call_tool("update_companies", update)

        return anyio.run(main)

    count, written = session("--allow-writes")  # writes off is shown in process (test_tools)

    assert count == 129
    assert not written.is_error, written.content
    assert written.structured_content["record"]["name"] == "Acme Inc"
    # the call was taken from the token's budget in Redis, where the workers take theirs
    assert redis_client.exists(f"phs:rl:{budget_key(TOKEN)}:tat")


def test_writes_are_on_with_the_flag_or_the_environment(monkeypatch: Any) -> None:
    from worker.mcp_server.settings import McpSettings

    monkeypatch.delenv("PLANHAT_SYNC_MCP_WRITES", raising=False)
    assert McpSettings().writes is False
    monkeypatch.setenv("PLANHAT_SYNC_MCP_WRITES", "1")
    assert McpSettings().writes is True


def test_without_redis_the_process_keeps_a_budget_of_its_own(
    redis_client: redis.Redis,
) -> None:
    from worker.mcp_server.server import shared_limiter
    from worker.runtime.ratelimit import LocalRateLimiter, RedisRateLimiter
    from worker.runtime.settings import EngineSettings

    config = EngineSettings()

    assert isinstance(shared_limiter(TEST_REDIS_URL, config), RedisRateLimiter)
    assert isinstance(shared_limiter("redis://127.0.0.1:1/0", config), LocalRateLimiter)
