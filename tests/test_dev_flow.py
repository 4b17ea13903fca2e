"""The embedded engine end to end: receiver → inbox → workers → Planhat sandbox(es)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from connectors.planhat.client import PlanhatClient
from connectors.planhat.models import MODELS, Operation
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.standard.verify import signed_headers
from state.connections import Connections, Tenant, add_connection
from state.crypto import SecretBox
from state.db import migrate
from tests import stand_in_http
from tests.conftest import drain_embedded, free_port_pair
from tests.planhat.samples import sample
from worker.cli.dev import post_signed
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.receiver import create_web_app
from worker.runtime.embedded import embedded_runtime
from worker.runtime.settings import EngineSettings

SECRET_A = "whsec_" + base64.b64encode(b"tenant-a-secret-000000000").decode()
SECRET_B = "whsec_" + base64.b64encode(b"tenant-b-secret-000000000").decode()
STRIPE_SECRET = "whsec_stripe_test_secret"
UNLIMITED = SandboxConfig(rate_per_minute=1e9, burst=10**6)


class Embedded:
    """Two tenants, each with its own Planhat sandbox, on the embedded engine."""

    def __init__(self, tmp_path: Path, secrets: dict[str, str] | None = None) -> None:
        """``secrets``: the ``default`` tenant's (else Standard Webhooks and Stripe)."""
        self.planhat_a = BackgroundSandbox(UNLIMITED).start()
        self.planhat_b = BackgroundSandbox(UNLIMITED).start()
        url = f"sqlite:///{tmp_path}/state.db"
        migrate(url)
        box = SecretBox(Fernet.generate_key().decode())
        default = Tenant(
            name="default",
            planhat_base_url=self.planhat_a.url,
            planhat_token="token-a",
            secrets=secrets or {"standard": SECRET_A, "stripe": STRIPE_SECRET},
        )

        def connections(engine: Engine) -> Connections:
            return Connections(engine, box=lambda: box, default=lambda: default)

        config = EngineSettings(flush_linger=0.05, sweep_interval=1.0)
        self.runtime, self.dispatcher = embedded_runtime(url, connections, config)
        add_connection(
            self.runtime.engine,
            box,
            name="tenant-b",
            planhat_base_url=self.planhat_b.url,
            planhat_token="token-b",
            secrets={"standard": SECRET_B},
        )
        self.dispatcher.start()
        app = create_web_app(
            connections=connections(self.runtime.engine),
            inbox=Inbox(ThreadedWriter(self.runtime.engine), self.dispatcher),
        )
        self.http = TestClient(app)

    def send(self, connection: str, secret: str, event_id: str, event: dict[str, Any]) -> int:
        body = json.dumps(event).encode()
        headers = signed_headers(secret, event_id, body, int(time.time()))
        return self.http.post(
            f"/webhooks/{connection}/standard", content=body, headers=headers
        ).status_code

    def drain(self, timeout: float = 30) -> None:
        drain_embedded(
            self.runtime.engine, self.dispatcher, ("default", "tenant-b"), timeout=timeout
        )

    def close(self) -> None:
        self.dispatcher.stop()
        self.planhat_a.stop()
        self.planhat_b.stop()
        self.runtime.engine.dispose()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    system = Embedded(tmp_path)
    yield system
    system.close()


def _event(model: str, record: dict[str, Any]) -> dict[str, Any]:
    key_field = MODELS[model].key_fields[0]  # sourceId; a custom field's name
    key = record.pop(key_field)
    record.pop(MODELS[model].external_key, None)
    return {"model": model, "key": {key_field: key}, "fields": record, "version": 1}


def test_the_standard_source_pushes_every_model_the_sandbox_serves(embedded: Embedded) -> None:
    # given a company, then one record of every model, each as a signed standard event
    assert (
        embedded.send("default", SECRET_A, "co", _event("companies", sample("companies", "co", "")))
        == 202
    )
    for model in sorted(MODELS):
        if model == "companies":
            continue
        record = sample(model, f"std-{model}", "srcid-src-co")
        assert embedded.send("default", SECRET_A, f"evt-{model}", _event(model, record)) == 202

    # when the engine has drained
    embedded.drain()

    # then Planhat holds each one, found by its sourceId (a custom field by its name)
    with PlanhatClient("check", base_url=embedded.planhat_a.url) as planhat:
        for model, spec in MODELS.items():
            key = "src-co" if model == "companies" else f"src-std-{model}"
            if not spec.alt_keys:
                assert "field std-customfields" in {r["name"] for r in planhat.list(model)}
            elif spec.supports(Operation.GET):
                assert planhat.get(model, f"srcid-{key}")["sourceId"] == key, model
            else:
                assert key in {r.get("sourceId") for r in planhat.list(model)}, model


def test_two_connections_never_reach_each_others_planhat(embedded: Embedded) -> None:
    a = _event("companies", {"sourceId": "only-a", "name": "A's customer"})
    b = _event("companies", {"sourceId": "only-b", "name": "B's customer"})
    assert embedded.send("default", SECRET_A, "a-1", a) == 202
    assert embedded.send("tenant-b", SECRET_B, "b-1", b) == 202
    # an event signed for A, sent to B's URL, is refused
    assert embedded.send("tenant-b", SECRET_A, "a-2", a) == 401

    embedded.drain()

    with PlanhatClient("a", base_url=embedded.planhat_a.url) as planhat_a:
        assert [c["sourceId"] for c in planhat_a.list("companies")] == ["only-a"]
    with PlanhatClient("b", base_url=embedded.planhat_b.url) as planhat_b:
        assert [c["sourceId"] for c in planhat_b.list("companies")] == ["only-b"]


def test_dev_killed_and_started_again_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("planhat-sync"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLANHAT_", "DATABASE_"))}
    env.pop("STANDARD_WEBHOOK_SECRET", None)
    port = free_port_pair()
    args = [exe, "dev", "--port", str(port), "--data-dir", str(tmp_path)]
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/webhooks/default/standard"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                stand_in_http.get(f"http://127.0.0.1:{port}/healthz").raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "dev did not start"
                time.sleep(0.1)
        secret = (tmp_path / "standard-webhook-secret").read_text().strip()
        # when 150 events are acknowledged and the process is killed at once
        for n in range(150):
            body = json.dumps(_event("companies", {"sourceId": f"k{n}", "name": f"K{n}"})).encode()
            assert post_signed(url, secret, f"kill-{n}", body).status_code == 202
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    # then a restart brings every acknowledged event into Planhat
    again = subprocess.run(
        [*args, "--no-serve"], env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert again.returncode == 0, again.stderr
    sandbox = BackgroundSandbox(SandboxConfig(db_path=str(tmp_path / "planhat-sandbox.db"))).start()
    try:
        deadline = time.monotonic() + 5
        with PlanhatClient("check", base_url=sandbox.url) as planhat:
            names = {c.get("sourceId") for c in planhat.list("companies")}
    finally:
        sandbox.stop()
    assert {f"k{n}" for n in range(150)} <= names
    del deadline
