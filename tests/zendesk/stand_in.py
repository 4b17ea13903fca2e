"""The Zendesk stand-in on a real socket, and a client for it, for tests."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from connectors.planhat.sandbox.server import BackgroundServer
from connectors.zendesk.sandbox import ZendeskConfig, create_app

EMAIL, TOKEN = "sync@acme.example", "zd-token"
WEBHOOK_SECRET = "zendesk-webhook-signing-secret"


def basic(email: str = EMAIL, token: str = TOKEN) -> str:
    return "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()


@contextmanager
def stand_in(**given: Any) -> Iterator[tuple[BackgroundServer, httpx.Client]]:
    """The stand-in (``given`` overrides its config) and an authenticated client."""
    config = ZendeskConfig(
        **{
            "credentials": {EMAIL: TOKEN},
            "export_lag_s": 0,
            "webhook_secret": WEBHOOK_SECRET,
            **given,
        }
    )
    server = BackgroundServer(create_app(config))
    with server, httpx.Client(base_url=server.url, headers={"authorization": basic()}) as client:
        yield server, client


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def new_ticket(client: httpx.Client, **ticket: Any) -> dict[str, Any]:
    answer = client.post("/api/v2/tickets.json", json={"ticket": ticket})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()["ticket"]
    return created
