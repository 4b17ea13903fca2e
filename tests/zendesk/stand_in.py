"""The Zendesk stand-in on a real socket, and a client for it, for tests."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from connectors.planhat.sandbox.server import BackgroundServer
from connectors.zendesk.sandbox import ZendeskConfig, create_app
from tests.stand_ins import served, wait_for

__all__ = ["EMAIL", "TOKEN", "WEBHOOK_SECRET", "basic", "new_ticket", "stand_in", "wait_for"]

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
    with served(create_app(config), {"authorization": basic()}) as (server, client):
        yield server, client


def new_ticket(client: httpx.Client, **ticket: Any) -> dict[str, Any]:
    answer = client.post("/api/v2/tickets.json", json={"ticket": ticket})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()["ticket"]
    return created
