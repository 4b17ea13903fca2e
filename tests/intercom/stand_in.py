"""The Intercom stand-in on a real socket, and a client for it, for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from connectors.intercom.api import headers
from connectors.intercom.sandbox import IntercomConfig, create_app
from connectors.planhat.sandbox.server import BackgroundServer
from tests.stand_ins import served, wait_for

__all__ = ["CLIENT_SECRET", "TOKEN", "new_contact", "new_ticket", "routes", "stand_in", "wait_for"]

TOKEN = "intercom-access-token"
CLIENT_SECRET = "intercom-client-secret"


@contextmanager
def stand_in(**given: Any) -> Iterator[tuple[BackgroundServer, httpx.Client]]:
    """The stand-in (``given`` overrides its config) and an authenticated client."""
    config = IntercomConfig(
        **{"tokens": frozenset({TOKEN}), "client_secret": CLIENT_SECRET, **given}
    )
    with served(create_app(config), headers(TOKEN)) as (server, client):
        yield server, client


def new_contact(client: httpx.Client, email: str | None, company: str | None = None) -> str:
    contact = client.post("/contacts", json={"email": email, "role": "user"}).json()
    if company:
        made = client.post("/companies", json={"company_id": company, "name": company}).json()
        client.post(f"/contacts/{contact['id']}/companies", json={"id": made["id"]})
    return str(contact["id"])


def new_ticket(client: httpx.Client, contact: str, title: str = "Printer", **more: Any) -> Any:
    body = {"ticket_type_id": "2979330", "contacts": [{"id": contact}],
            "ticket_attributes": {"_default_title_": title, "_default_description_": "jams"},
            **more}  # fmt: skip
    answer = client.post("/tickets", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def routes(client: httpx.Client) -> dict[str, int]:
    return dict(client.get("/_sandbox/stats").json()["by_route"])
