"""Helpers for the MCP tests: a tool context on a test's state store and the Planhat
sandbox, and the SDK's own client connected in process (``mcp.client.Client(server)``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.server import MCPServer
from mcp.types import CallToolResult
from sqlalchemy import Engine

from connectors.planhat.sandbox.server import BackgroundSandbox
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from tests.conftest import sandbox_stats
from worker.mcp_server.context import ToolContext
from worker.mcp_server.server import build_server
from worker.runtime.ratelimit import LocalRateLimiter

T = TypeVar("T")
PLANHAT_TOKEN = "mcp-test-token"
STRIPE_SECRET = "whsec_mcp_test"


def context(engine: Engine, sandbox: BackgroundSandbox, *, writes: bool = False) -> ToolContext:
    tenant = Tenant(
        name="default",
        planhat_base_url=sandbox.url,
        planhat_token=PLANHAT_TOKEN,
        secrets={"stripe": STRIPE_SECRET},
    )
    box = SecretBox(Fernet.generate_key().decode())
    connections = Connections(engine, box=lambda: box, default=lambda: tenant)
    limiter = LocalRateLimiter(rate_per_minute=60_000, burst=100)
    return ToolContext(engine=engine, connections=connections, limiter=limiter, writes=writes)


def server_for(engine: Engine, sandbox: BackgroundSandbox, *, writes: bool = False) -> MCPServer:
    return build_server(context(engine, sandbox, writes=writes))


def with_client(server: MCPServer, use: Callable[[Client], Awaitable[T]]) -> T:
    """Run ``use`` with the SDK's client connected to ``server`` in this process."""

    async def main() -> T:
        async with Client(server, raise_exceptions=True) as client:
            return await use(client)

    return anyio.run(main)


def call(server: MCPServer, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    async def use(client: Client) -> CallToolResult:
        return await client.call_tool(tool, arguments)

    return with_client(server, use)


def planhat_calls(sandbox: BackgroundSandbox) -> dict[str, int]:
    """The sandbox's request counter by route: ``{"PUT /companies/:id": 1, ...}``."""
    by_route = sandbox_stats(sandbox)["by_route"]
    assert isinstance(by_route, dict)
    return {str(route): int(count) for route, count in by_route.items()}
