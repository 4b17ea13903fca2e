"""``planhat-sync web`` with PLANHAT_SYNC_MCP_TOKEN: the MCP server is mounted at /mcp of
the receiver's own process, refused without the token, answering with it; without the
variable there is no /mcp."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
import redis
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from connectors.planhat.sandbox.server import BackgroundSandbox
from tests import stand_in_http
from tests.conftest import free_port_pair
from tests.engine.services import TEST_REDIS_URL
from tests.mcp.test_http import INITIALIZE
from worker.mcp_server.http import REFUSED

PLANHAT_SYNC = str(Path(sys.executable).parent / "planhat-sync")
MCP_TOKEN = "web-process-mcp-token"


def started(tmp_path: Path, planhat_url: str, **extra: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port_pair()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/state.db",
           "REDIS_URL": TEST_REDIS_URL, "PLANHAT_API_TOKEN": "web-token",
           "PLANHAT_BASE_URL": planhat_url,
           "PLANHAT_SYNC_SECRET_KEY": Fernet.generate_key().decode(), **extra}  # fmt: skip
    if "PLANHAT_SYNC_MCP_TOKEN" not in extra:
        env.pop("PLANHAT_SYNC_MCP_TOKEN", None)
    web = subprocess.Popen(
        [PLANHAT_SYNC, "web", "--port", str(port)], env=env, cwd=tmp_path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if stand_in_http.get(f"{url}/healthz").status_code == 200:
                return web, url
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    web.kill()
    raise AssertionError(f"web did not start: {web.communicate()[0]}")


@pytest.fixture
def stop() -> Iterator[list[subprocess.Popen[str]]]:
    running: list[subprocess.Popen[str]] = []
    yield running
    for web in running:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=15)


def test_web_serves_mcp_behind_its_bearer_token(
    tmp_path: Path,
    sandbox: BackgroundSandbox,
    redis_client: redis.Redis,
    stop: list[subprocess.Popen[str]],
) -> None:
    web, url = started(tmp_path, sandbox.url, PLANHAT_SYNC_MCP_TOKEN=MCP_TOKEN)
    stop.append(web)
    accept = {"Accept": "application/json, text/event-stream"}

    refused = stand_in_http.post(f"{url}/mcp", json=INITIALIZE, headers=accept)

    async def listed() -> int:
        headers = {"Authorization": f"Bearer {MCP_TOKEN}"}
        async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
            transport = streamable_http_client(f"{url}/mcp", http_client=http)
            async with Client(transport) as client:
                return len((await client.list_tools()).tools)

    assert (refused.status_code, refused.text) == (401, REFUSED)
    assert anyio.run(listed) == 129


def test_without_the_variable_web_has_no_mcp_endpoint(
    tmp_path: Path, sandbox: BackgroundSandbox, stop: list[subprocess.Popen[str]]
) -> None:
    web, url = started(tmp_path, sandbox.url)
    stop.append(web)

    answer = stand_in_http.post(f"{url}/mcp", json=INITIALIZE,
                                headers={"Authorization": f"Bearer {MCP_TOKEN}"})  # fmt: skip

    assert answer.status_code == 404
