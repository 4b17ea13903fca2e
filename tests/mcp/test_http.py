"""The MCP server over streamable HTTP as ``web`` serves it (``mount_mcp``), on a real
uvicorn socket: refused without the bearer token, and with it the same calls work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from fastapi import FastAPI
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from sqlalchemy import Engine

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox, BackgroundServer
from tests import stand_in_http
from tests.mcp.tools import PLANHAT_TOKEN, server_for
from worker.mcp_server.http import MCP_PATH, REFUSED, mount_mcp

MCP_TOKEN = "mcp-bearer-for-tests"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}


@pytest.fixture
def web(sqlite_engine: Engine, sandbox: BackgroundSandbox) -> Iterator[BackgroundServer]:
    sessions: list[AbstractAsyncContextManager[None]] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with sessions[0]:
            yield

    app = FastAPI(lifespan=lifespan)
    sessions.append(mount_mcp(app, server_for(sqlite_engine, sandbox, writes=True), MCP_TOKEN))
    with BackgroundServer(app) as server:
        yield server


def over_http(url: str, token: str | None, tool: str, arguments: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def main() -> Any:
        async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
            transport = streamable_http_client(f"{url}{MCP_PATH}", http_client=http)
            async with Client(transport) as client:
                tools = (await client.list_tools()).tools
                return len(tools), await client.call_tool(tool, arguments)

    return anyio.run(main)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {MCP_TOKEN}"])
def test_without_the_bearer_token_the_endpoint_refuses(
    web: BackgroundServer, authorization: str | None
) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if authorization:
        headers["Authorization"] = authorization

    answer = stand_in_http.post(f"{web.url}{MCP_PATH}", json=INITIALIZE, headers=headers)

    assert answer.status_code == 401
    assert answer.text == REFUSED
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_the_sdk_client_without_the_token_cannot_connect(web: BackgroundServer) -> None:
    with pytest.raises(ExceptionGroup) as refused:
        over_http(web.url, None, "list_companies", {})
    # The SDK reports the 401 to initialize as an error answer: no session, no call.
    assert refused.group_contains(MCPError, match="Server returned an error response", depth=2)


def test_with_the_token_the_same_calls_work(
    web: BackgroundServer, sandbox: BackgroundSandbox
) -> None:
    with PlanhatClient(PLANHAT_TOKEN, base_url=sandbox.url) as planhat:
        planhat.create("companies", {"name": "Acme", "sourceId": "acme"})

    count, listed = over_http(web.url, MCP_TOKEN, "list_companies", {})
    _, planned = over_http(web.url, MCP_TOKEN, "update_companies",
                           {"id": "srcid-acme", "data": {"name": "Acme Inc"}})  # fmt: skip
    _, status = over_http(web.url, MCP_TOKEN, "get_sync_status", {})

    assert count == 129
    assert [record["name"] for record in listed.structured_content["records"]] == ["Acme"]
    assert planned.structured_content["changes"] == [
        {"field": "name", "before": "Acme", "after": "Acme Inc", "new": False}
    ]
    assert planned.structured_content["written"] is False
    assert not status.is_error
