"""``planhat-sync dev``: receiver, worker and scheduler in one process, on embedded defaults.

SQLite, no Redis (in-process queue and limiter), and with no PLANHAT_API_TOKEN the Planhat
sandbox on the next port, its data in a file beside the state database (a restart keeps
it, as Planhat would). Everything lives under ``--data-dir``: ``state.db``,
``planhat-sandbox.db``, ``secret.key`` (seals secrets at rest) and
``standard-webhook-secret``. It shows the flow at once: it signs a few events, sends them
to its own webhook URL, waits for them to reach Planhat and prints what Planhat holds.
Then the other way: the sandbox's Automation on licenses POSTs its hints to this receiver
(``/webhooks/default/planhat``), and a license edited as in Planhat's UI comes back out,
signed, at a local outbound URL this receiver serves (``/_dev/outbound``). With no
``ZENDESK_*`` settings, a Zendesk ticket crosses both ways too, through the Zendesk
stand-in (``dev_zendesk.py``).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import typer
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import JSONResponse

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundServer
from connectors.sources import env_api_bases
from connectors.standard.verify import signed_headers, verify
from connectors.webhooks import SignatureError
from state.connections import Connections, Tenant
from state.crypto import secret_box
from state.db import create_private_file, migrate, session_scope
from state.inbox import has_pending
from state.location import DATA_DIR_ENV, key_file, sqlite_url
from state.location import data_dir as default_data_dir
from worker.cli import dev_zendesk
from worker.cli.keys import require_keys
from worker.cli.stand_in import StandInProcess
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.poll import SourceApis
from worker.intake.receiver import create_web_app
from worker.ops.ui import StatusPage, mount_status_page, waker
from worker.runtime.embedded import Sweeper, embedded_runtime
from worker.runtime.metrics_state import add_metrics_route
from worker.runtime.ratelimit import LocalRateLimiter
from worker.runtime.settings import SANDBOX_TOKEN, EngineSettings, Settings

DEMO_EVENTS: list[dict[str, Any]] = [
    {"model": "companies", "key": {"sourceId": "demo-acme"}, "version": 1,
     "fields": {"name": "Acme Inc", "domains": ["acme.example"]}},
    {"model": "companies", "key": {"sourceId": "demo-globex"}, "version": 1,
     "fields": {"name": "Globex"}},
    {"model": "licenses", "key": {"sourceId": "demo-sub-acme"}, "version": 1,
     "fields": {"companyId": "srcid-demo-acme", "product": "Pro", "_currency": "USD",
                "mrr": 490, "fromDate": "2026-01-01"}},
    {"model": "licenses", "key": {"sourceId": "demo-sub-acme"}, "version": 2,
     "fields": {"mrr": 590}},
    {"model": "licenses", "key": {"sourceId": "demo-sub-globex"}, "version": 1,
     "fields": {"companyId": "srcid-demo-globex", "product": "Team", "_currency": "EUR",
                "mrr": 99, "fromDate": "2026-03-15"}},
]  # fmt: skip


# What dev keeps in its data directory: raw webhook bodies (the state database and its
# write-ahead log), the key that opens the stored secrets, a webhook secret.
PRIVATE_FILES = (
    "state.db",
    "state.db-wal",
    "state.db-shm",
    "planhat-sandbox.db",
    "secret.key",
    "standard-webhook-secret",
    "admin-token",
)


def private_data_dir(data_dir: Path) -> None:
    """Create the data directory readable by its owner only (0700). One that exists is
    left as it is (the user named it, and it may be shared), but the files dev keeps in
    it, from an older version perhaps, are made private."""
    try:
        data_dir.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        for name in PRIVATE_FILES:
            path = data_dir / name
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(0o600)


def standard_secret(data_dir: Path) -> str:
    """STANDARD_WEBHOOK_SECRET, or one generated once and kept in the data directory."""
    if os.environ.get("STANDARD_WEBHOOK_SECRET"):
        return os.environ["STANDARD_WEBHOOK_SECRET"]
    return _kept(
        data_dir / "standard-webhook-secret",
        lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    )


def admin_token(settings: Settings, data_dir: Path) -> str:
    """PLANHAT_SYNC_ADMIN_TOKEN (the status page's), or one generated once and kept in the
    data directory (``admin-token``)."""
    return settings.admin_token() or _kept(
        data_dir / "admin-token", lambda: secrets.token_urlsafe(24)
    )


def _kept(path: Path, make: Callable[[], str]) -> str:
    """The secret in ``path``, written there first if there is none."""
    try:
        # Created readable by its owner only: never written first and restricted later.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


def post_signed(url: str, secret: str, event_id: str, body: bytes) -> httpx.Response:
    headers = signed_headers(secret, event_id, body, int(time.time()))
    return httpx.post(url, content=body, headers=headers, timeout=10)


def _drained(engine: Engine, dispatcher_idle: Any) -> bool:
    with session_scope(engine) as session:
        return not has_pending(session, "default") and bool(dispatcher_idle())


def run(settings: Settings, *, port: int, data_dir: Path, serve_forever: bool) -> None:
    private_data_dir(data_dir)
    database_url = os.environ.get("DATABASE_URL") or sqlite_url(data_dir)
    migrate(database_url)
    require_keys(database_url, lambda: secret_box(key_file(data_dir)))
    box = secret_box(key_file(data_dir))
    secret = standard_secret(data_dir)
    env_tenant = settings.default_tenant()
    # The Planhat Automations' secret: the environment's, or one for this run (the sandbox
    # started below is told it).
    hint_secret = env_tenant.secrets.get("planhat") or secrets.token_urlsafe(24)
    local = f"http://127.0.0.1:{port}"
    options = dict(env_tenant.options)
    sandbox: SandboxProcess | None = None
    zendesk: dev_zendesk.ZendeskStandIn | None = None
    apis = settings.source_apis()
    if settings.planhat_api_token:
        base_url, token = settings.planhat_base_url, settings.planhat_token()
    else:
        create_private_file(str(data_dir / "planhat-sandbox.db"))
        hints = f"{local}/webhooks/default/planhat"
        automations = [f"licenses={hints}", f"tickets={hints}"]
        sandbox = SandboxProcess(data_dir / "planhat-sandbox.db", port=port + 1,
                                 automation=(automations, hint_secret)).start()  # fmt: skip
        if not dev_zendesk.credentials_set(os.environ):
            zendesk = dev_zendesk.ZendeskStandIn(
                dev_zendesk.port_near(port + 2), f"{local}/webhooks/default/zendesk"
            ).start()
            apis = SourceApis(**{**env_api_bases(os.environ), "zendesk": zendesk.url})
        base_url, token = sandbox.url, SANDBOX_TOKEN
        if "standard.outbound_url" not in options:  # the demo's: this receiver's
            options["standard.outbound_url"] = f"{local}/_dev/outbound"
            options["standard.outbound_models"] = "licenses"
    tenant = Tenant(
        name="default",
        planhat_base_url=base_url,
        planhat_token=token,
        secrets={
            **env_tenant.secrets,
            "standard": secret,
            "planhat": hint_secret,
            **(zendesk.secrets() if zendesk else {}),
        },
        options=options,
    )
    config = EngineSettings(sweep_interval=5.0)

    def connections(engine: Engine) -> Connections:
        return Connections(engine, box=lambda: box, default=lambda: tenant)

    runtime, dispatcher = embedded_runtime(database_url, connections, config, apis)
    dispatcher.start()
    sweeper = Sweeper(runtime, config.sweep_interval, apis)
    sweeper.start()
    app = create_web_app(
        connections=connections(runtime.engine),
        inbox=Inbox(ThreadedWriter(runtime.engine), dispatcher),
    )
    add_metrics_route(app, runtime.engine)  # one process: its own registry is everything
    login = admin_token(settings, data_dir)
    limiter = runtime.limiter
    mount_status_page(
        app,
        StatusPage(
            engine=runtime.engine,
            connections=connections(runtime.engine),
            admin_token=login,
            limiter=limiter if isinstance(limiter, LocalRateLimiter) else None,
            wake=waker(dispatcher),
            default_options=options,
        ),
    )
    outbound = LocalOutbound(secret)
    app.add_route("/_dev/outbound", outbound.receive, methods=["POST"])
    server = BackgroundServer(app, port=port).start()
    webhook = f"{server.url}/webhooks/default/standard"
    typer.echo(f"planhat-sync dev: state in {data_dir}/, receiver on {server.url}")
    typer.echo(f"Status page: {server.url}/ui/login?token={quote(login)}")
    if sandbox is not None:
        typer.echo(f"No PLANHAT_API_TOKEN: the Planhat sandbox is on {sandbox.url}")
    if zendesk is not None:
        typer.echo(f"No ZENDESK_* settings: the Zendesk stand-in is on {zendesk.url}")
    else:
        typer.echo(f"Writing to Planhat at {base_url} (the demo events are not sent there)")
    try:
        if sandbox is not None:
            _demo(webhook, secret, runtime.engine, dispatcher.idle, base_url, token)
            _demo_back(outbound, base_url, token)
        if zendesk is not None:
            dev_zendesk.demo(zendesk, base_url, token)
        typer.echo("")
        typer.echo(f"Webhook URL (Standard Webhooks):  POST {webhook}")
        typer.echo(f"Its secret:                       {secret}")
        typer.echo("Send a change yourself:")
        typer.echo(
            "  planhat-sync send --url "
            f'{webhook} --data \'{{"model": "companies", "key": {{"sourceId": "me"}}, '
            '"fields": {"name": "Me Inc"}, "version": 1}\''
        )
        typer.echo("Look at the result:")
        typer.echo(f"  PLANHAT_BASE_URL={base_url} planhat-sync planhat companies list")
        # Other commands find this state by themselves when run here (state/location.py).
        elsewhere = "" if data_dir == default_data_dir() else f"{DATA_DIR_ENV}={data_dir} "
        typer.echo(f"  {elsewhere}planhat-sync dlq list")
        if serve_forever:
            typer.echo("Serving; Ctrl-C stops (nothing acknowledged is lost).")
            threading.Event().wait()
    except KeyboardInterrupt:
        typer.echo("Stopped.")
    finally:
        sweeper.stop()
        dispatcher.stop()
        server.stop()
        if sandbox is not None:
            sandbox.stop()
        if zendesk is not None:
            zendesk.stop()


class SandboxProcess(StandInProcess):
    """The Planhat sandbox as a process of its own (``planhat-sync sandbox``), as Planhat is
    a service of its own: its work never competes with the receiver's for this process
    (measured: in process, each bulk upsert it answered during a burst held the
    receiver's p99 above 90 ms)."""

    name = "Planhat sandbox"

    def __init__(
        self, db: Path, port: int, automation: tuple[list[str], str] | None = None
    ) -> None:
        """``automation``: ``MODEL=URL`` items and their secret (``--automation``)."""
        command = ["sandbox", "--port", str(port), "--db", str(db)]
        if automation is not None:
            for item in automation[0]:
                command += ["--automation", item]
            command += ["--automation-secret", automation[1]]
        super().__init__(port, command)


def _demo(webhook: str, secret: str, engine: Engine, idle: Any, base_url: str, token: str) -> None:
    accepted = duplicates = 0
    for number, event in enumerate(DEMO_EVENTS):
        body = json.dumps(event).encode()
        answer = post_signed(webhook, secret, f"demo-{number}", body)
        if answer.status_code == 202:
            accepted += 1
        elif answer.status_code == 200:
            duplicates += 1
        else:
            raise RuntimeError(f"the receiver refused a demo event: {answer.text}")
    typer.echo(
        f"Sent {len(DEMO_EVENTS)} signed events to the receiver: {accepted} accepted, "
        f"{duplicates} already received before (duplicates are stored once)"
    )
    deadline = time.monotonic() + 30
    time.sleep(0.3)
    while not _drained(engine, idle) and time.monotonic() < deadline:
        time.sleep(0.1)
    with PlanhatClient(token, base_url=base_url) as planhat:
        typer.echo("Planhat now holds:")
        for company in planhat.list("companies", select=["name", "sourceId"]):
            typer.echo(f"  company {company['_id']}  {company.get('name')}")
        for license in planhat.list("licenses", select=["product", "mrr", "_currency"]):
            typer.echo(
                f"  license {license['_id']}  {license.get('product')}  "
                f"mrr {license.get('mrr')} {license.get('_currency')}"
            )


class LocalOutbound:
    """The demo's outbound URL: what the standard source sends back, its signature checked."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self.received: list[dict[str, Any]] = []
        self.arrived = threading.Event()

    async def receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            verify(request.headers, body, self._secret, time.time())
        except SignatureError as error:
            return JSONResponse({"error": str(error)}, status_code=401)
        self.received.append(json.loads(body))
        self.arrived.set()
        return JSONResponse({"ok": True})


def _demo_back(outbound: LocalOutbound, base_url: str, token: str) -> None:
    """A person edits a license in Planhat's UI; the change comes back out, signed."""
    with PlanhatClient(token, base_url=base_url) as planhat:
        license = planhat.get("licenses", "srcid-demo-sub-globex")
    mrr = int(license.get("mrr") or 0) + 10  # another value each run: a change each time
    edited = httpx.post(f"{base_url}/_sandbox/ui/licenses/{license['_id']}", json={"mrr": mrr},
                        timeout=10)  # fmt: skip
    edited.raise_for_status()
    typer.echo("")
    typer.echo(f"Then a person sets the Team license's mrr to {mrr} in Planhat (the sandbox's UI);")
    typer.echo("its Automation tells the receiver, the worker reads the license from Planhat and")
    if not outbound.arrived.wait(timeout=30):
        typer.echo("... the change did not come back out within 30 s (see the logs)")
        return
    typer.echo(f"sends the change back out, signed: POST /_dev/outbound {outbound.received[-1]}")
