"""``planhat-sync dev``'s helpdesk half: a Zendesk ticket crossing both ways.

With no ``ZENDESK_*`` credentials set (and the Planhat sandbox in use), dev starts the
Zendesk stand-in as a process of its own (``planhat-sync zendesk-sandbox``), its signed
event webhook pointed at dev's receiver (``/webhooks/default/zendesk``), and gives the
``default`` connection the stand-in's credentials, webhook secret and API base. The
Planhat sandbox's Automation on tickets POSTs to ``/webhooks/default/planhat`` (dev.py).

The demo then creates a ticket in Zendesk, waits until Planhat holds it, sets its status
to ``solved`` as a CSM would in Planhat's UI (the sandbox's ``/_sandbox/ui``), and waits
until Zendesk shows it. Each crossing is one printed line.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import typer

from connectors.planhat.client import PlanhatClient
from connectors.zendesk import api
from worker.cli.stand_in import StandInProcess

AGENT_EMAIL = "sync@dev.example"  # the stand-in's API user (an agent, as in Zendesk)
REQUESTER = {"name": "Jane Doe", "email": "jane@acme.example"}  # Acme's domain (dev.py)
DEMO_WAIT_S = 30.0


def credentials_set(environ: Mapping[str, str]) -> bool:
    """Whether the environment names a Zendesk account: then no stand-in, no demo."""
    names = ("ZENDESK_SUBDOMAIN", "ZENDESK_EMAIL", "ZENDESK_API_TOKEN", "ZENDESK_API_BASE",
             "ZENDESK_WEBHOOK_SECRET")  # fmt: skip
    return any(environ.get(name) for name in names)


def port_near(port: int) -> int:
    """``port`` when it is free, else one the system hands out."""
    for wanted in (port, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", wanted))
            except OSError:
                continue
            found: int = probe.getsockname()[1]
            return found
    raise RuntimeError("no free port for the Zendesk stand-in")


class ZendeskStandIn(StandInProcess):
    """The Zendesk stand-in as a process of its own, as Zendesk is a service of its own."""

    name = "Zendesk stand-in"

    def __init__(
        self, port: int, webhook_url: str, *, agents: Mapping[str, str] | None = None
    ) -> None:
        """``agents``: other API users (e-mail → token) it accepts besides the worker's."""
        self.api_token = secrets.token_urlsafe(18)
        self.webhook_secret = secrets.token_urlsafe(24)
        command = [
            "zendesk-sandbox", "--port", str(port),
            "--subdomain", "dev", "--credential", f"{AGENT_EMAIL}={self.api_token}",
            "--webhook-url", webhook_url, "--webhook-secret", self.webhook_secret,
            # in memory: started again, it must not reuse the ids Planhat already holds
            "--first-id", str(int(time.time()) * 10),
        ]  # fmt: skip
        for email, token in (agents or {}).items():
            command += ["--credential", f"{email}={token}"]
        super().__init__(port, command)

    def secrets(self) -> dict[str, str]:
        """The ``default`` connection's Zendesk secrets (``--secret zendesk:…`` stored)."""
        return {
            "zendesk": self.webhook_secret,
            "zendesk:subdomain": "dev",
            "zendesk:email": AGENT_EMAIL,
            "zendesk:api_token": self.api_token,
        }

    def client(self) -> httpx.Client:
        credentials = {"email": AGENT_EMAIL, "api_token": self.api_token}
        return api.client(credentials, self.url)


def _wait_for(check: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    deadline = time.monotonic() + DEMO_WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.2)
    return None


def demo(zendesk: ZendeskStandIn, planhat_url: str, planhat_token: str) -> bool:
    """A ticket made in Zendesk reaches Planhat; a CSM solves it in Planhat; Zendesk
    follows. True when both crossings were seen."""
    with zendesk.client() as http:
        created = http.post("/api/v2/tickets.json", json={"ticket": {
            "subject": "Cannot export invoices", "priority": "high", "requester": REQUESTER,
            "comment": {"body": "The export button does nothing since Monday."},
        }})  # fmt: skip
        created.raise_for_status()
        ticket = created.json()["ticket"]
    key = str(ticket["id"])
    typer.echo("")
    typer.echo(f"Helpdesk: an agent opens Zendesk ticket #{key} ({ticket['status']}, "
               f"{ticket['priority']}); its webhook tells the receiver,")  # fmt: skip

    def in_planhat() -> dict[str, Any] | None:
        with PlanhatClient(planhat_token, base_url=planhat_url) as planhat:
            for record in planhat.list("tickets"):
                if record.get("sourceId") == key and record.get("source") == "zendesk":
                    return record
        return None

    mirrored = _wait_for(in_planhat)
    if mirrored is None:
        typer.echo(f"... ticket #{key} did not reach Planhat within {DEMO_WAIT_S:.0f} s "
                   "(see the logs and planhat-sync dlq list)")  # fmt: skip
        return False
    typer.echo(f"  Planhat ticket {mirrored['_id']}  {mirrored.get('title')}  "
               f"status {mirrored.get('status')}  severity {mirrored.get('severity')}  "
               f"company {mirrored.get('companyId')}")  # fmt: skip

    edited = httpx.post(f"{planhat_url}/_sandbox/ui/tickets/{mirrored['_id']}",
                        json={"status": "solved"}, timeout=10)  # fmt: skip
    edited.raise_for_status()
    typer.echo("Then a CSM sets it to solved in Planhat (the sandbox's UI); its Automation")
    typer.echo("tells the receiver, the worker reads the ticket and writes Zendesk:")

    def solved_in_zendesk() -> dict[str, Any] | None:
        with zendesk.client() as http:
            now: dict[str, Any] = http.get(f"/api/v2/tickets/{key}.json").json()["ticket"]
        return now if now.get("status") == "solved" else None

    solved = _wait_for(solved_in_zendesk)
    if solved is None:
        typer.echo(f"... Zendesk ticket #{key} was not solved within {DEMO_WAIT_S:.0f} s "
                   "(see the logs and planhat-sync dlq list)")  # fmt: skip
        return False
    typer.echo(
        f"  Zendesk ticket #{key}  status {solved['status']}  "
        f"updated {solved['updated_at']}  (written with safe_update, tagged as ours)"
    )
    return True
