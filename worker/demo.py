"""``planhat-sync dev``: the product on embedded defaults, showing its flow at once.

With no PLANHAT_API_TOKEN it starts the Planhat sandbox (data kept in a file under
``--data-dir``, so a restart keeps it, as the real Planhat would), writes a few companies
and licenses through the client the way the sync worker does (keyed bulk upserts), and
shows that writing the same records again changes nothing. With a token it only checks
that the real tenant answers: it never writes demo data into a real Planhat.
"""

from __future__ import annotations

import threading
from pathlib import Path

import typer

from connectors.planhat.bulk import count_outcomes
from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from worker.settings import SANDBOX_TOKEN, Settings

DEMO_COMPANIES = [
    {"externalId": "demo-acme", "name": "Acme Inc", "domains": ["acme.example"]},
    {"externalId": "demo-globex", "name": "Globex", "domains": ["globex.example"]},
]
DEMO_LICENSES = [
    {
        "sourceId": "demo-sub-acme-pro",
        "companyId": "extid-demo-acme",
        "product": "Pro",
        "_currency": "USD",
        "mrr": 490,
        "fromDate": "2026-01-01",
    },
    {
        "sourceId": "demo-sub-globex-team",
        "companyId": "extid-demo-globex",
        "product": "Team",
        "_currency": "EUR",
        "mrr": 99,
        "fromDate": "2026-03-15",
    },
]


def run(settings: Settings, *, port: int, data_dir: Path, serve_forever: bool) -> None:
    if settings.planhat_api_token:
        with PlanhatClient(settings.planhat_token(), base_url=settings.planhat_base_url) as client:
            client.list_page("companies", limit=1, select=["_id"])
        typer.echo(f"Planhat at {settings.planhat_base_url} accepted the token.")
        return

    data_dir.mkdir(parents=True, exist_ok=True)
    config = SandboxConfig(db_path=str(data_dir / "planhat-sandbox.db"))
    with BackgroundSandbox(config, port=port) as sandbox:
        typer.echo(f"No PLANHAT_API_TOKEN set: Planhat sandbox started on {sandbox.url}")
        with PlanhatClient(SANDBOX_TOKEN, base_url=sandbox.url) as client:
            for model, records in (("companies", DEMO_COMPANIES), ("licenses", DEMO_LICENSES)):
                first = count_outcomes(client.bulk_upsert(model, records))
                again = count_outcomes(client.bulk_upsert(model, records))
                typer.echo(f"  bulk upsert {len(records)} {model}: {first}; same again: {again}")
            for license in client.list("licenses", select=["companyId", "product", "mrr"]):
                typer.echo(
                    f"  license {license['_id']}  {license.get('product')}  mrr "
                    f"{license.get('mrr')}  company {license.get('companyId')}"
                )
        typer.echo("Look at it yourself:")
        typer.echo(f"  export PLANHAT_BASE_URL={sandbox.url}")
        typer.echo("  planhat-sync planhat licenses list")
        typer.echo("  planhat-sync planhat companies get extid-demo-acme")
        if serve_forever:
            typer.echo("Serving; Ctrl-C stops.")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                typer.echo("Stopped.")
