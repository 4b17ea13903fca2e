"""The ``Source`` seam: a source is one object in the registry, and the engine names none.

A throwaway source defined here, with a webhook, a feed, thin events completed from its
API and a prepare hook, runs end to end through the real receiver, the embedded engine and
the Planhat sandbox without a line of ``worker/`` knowing it. Its API is a local fake with
counters (``httpx.MockTransport``), as any outside system is in these tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select

from connectors.change import Change, MappingError
from connectors.options import Option
from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.source import (
    CannotComplete,
    Credential,
    Feed,
    HasApi,
    Polled,
    PrepareContext,
    Prepared,
    PrepareHook,
    Preparing,
    ThinEvents,
)
from connectors.sources import SOURCES, env_secrets
from connectors.webhooks import SignatureError
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import migrate, session_scope
from state.tables import DeadLetter, InboxEvent
from tests.conftest import drain_embedded
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.poll import SourceApis
from worker.intake.receiver import create_web_app
from worker.runtime.embedded import embedded_runtime
from worker.runtime.jobs import run_poll
from worker.runtime.settings import EngineSettings

ROOT = Path(__file__).resolve().parents[2]
# The engine: everything that moves events, never what a source is.
ENGINE_PACKAGES = ("worker/intake", "worker/pipeline", "worker/runtime", "worker/ops", "state")


def test_no_source_is_named_in_the_engine() -> None:
    # Planhat is also a source (changes made there flow back), and the destination the
    # whole engine speaks of: its name is allowed, its source's package is not.
    named = [name for name in SOURCES if name != "planhat"] + ["planhat_source"]
    names = re.compile(r"\b(" + "|".join(named) + r")\b", re.IGNORECASE)
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ENGINE_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if names.search(line)
    ]
    assert found == []


def test_every_registered_source_says_what_it_can_do() -> None:
    for source in SOURCES.values():
        assert isinstance(source.checks_on_receipt, bool)
        if isinstance(source, HasApi):
            assert source.credentials, f"{source.name} has an API but no credentials"
    thin = {name for name, source in SOURCES.items() if isinstance(source, ThinEvents)}
    polled = {name for name, source in SOURCES.items() if isinstance(source, Polled)}
    receipt = {name for name, source in SOURCES.items() if source.checks_on_receipt}
    assert (thin, polled, receipt) == (
        {"surveymonkey", "zendesk", "intercom"},
        {"stripe", "chargebee", "typeform", "zendesk", "intercom"},
        {"standard"},
    )


def test_credentials_come_from_source_and_name_in_the_environment() -> None:
    secrets = env_secrets(
        {
            "STRIPE_API_KEY": "sk_1",
            "CHARGEBEE_SITE": "acme",
            "TYPEFORM_API_TOKEN": "tf_old",  # its name before the rule: still read
            "SURVEYMONKEY_ACCESS_TOKEN": "sm_1",
            "STANDARD_WEBHOOK_SECRET": "whsec_x",
        }
    )

    assert secrets == {
        "stripe:api_key": "sk_1",
        "chargebee:site": "acme",
        "typeform:api_key": "tf_old",
        "surveymonkey:access_token": "sm_1",
        "standard": "whsec_x",
    }
    assert env_secrets({"TYPEFORM_API_KEY": "new", "TYPEFORM_API_TOKEN": "old"}) == {
        "typeform:api_key": "new"
    }


# --- a throwaway source ---------------------------------------------------------------


@dataclass
class FakeRecords:
    """The throwaway system's API: ``GET /events?since=``, ``GET /records/{id}``."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def change(self, event_id: str, record_id: str, name: str, at: int) -> dict[str, Any]:
        self.records[record_id] = {"id": record_id, "name": name, "updated": at}
        event = {"id": event_id, "record": record_id, "at": at}
        self.events.append(event)
        return event

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        if request.headers.get("authorization") != "Bearer tw-token":
            return httpx.Response(401, json={"error": "bad token"})
        if request.url.path == "/events":
            since = int(request.url.params["since"])
            return httpx.Response(200, json=[e for e in self.events if e["at"] >= since])
        record = self.records.get(request.url.path.removeprefix("/records/"))
        return httpx.Response(200, json=record) if record else httpx.Response(404, json={})


def refuse_the_refused(
    context: PrepareContext,
    fields: Sequence[Mapping[str, Any]],
    records: Sequence[dict[str, Any]],
) -> Prepared:
    """Gives each company a domain from its name; refuses one named "Refused"."""
    refused = {
        i: "the hook refuses Refused" for i, r in enumerate(records) if r["name"] == "Refused"
    }
    prepared = [{**r, "domains": [f"{r['name'].lower()}.example"]} for r in records]
    return Prepared(records=prepared, refused=refused)


@dataclass(frozen=True)
class ThrowawaySource:
    api: FakeRecords
    name: str = "throwaway"
    options: tuple[Option, ...] = ()
    checks_on_receipt: bool = False
    credentials: tuple[Credential, ...] = (Credential(name="token", help="an API token"),)
    api_base: str | None = "https://throwaway.invalid"
    prepare: Mapping[str, PrepareHook] = field(
        default_factory=lambda: {"companies": refuse_the_refused}
    )

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get("THROWAWAY_WEBHOOK_SECRET")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers.get("x-throwaway-signature", ""), expected):
            raise SignatureError("no valid x-throwaway-signature")
        return str(json.loads(body)["id"])

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        record = json.loads(body)
        if "name" not in record:
            raise MappingError("the record has no name")
        return [
            Change(
                model="companies",
                key_field="sourceId",
                key=f"tw-{record['id']}",
                fields={"name": record["name"]},
                version=record["updated"],
                event_id=event_id,
            )
        ]

    def _client(self, credentials: Mapping[str, str], api_base: str | None) -> httpx.Client:
        return httpx.Client(
            base_url=api_base or self.api_base or "",
            headers={"authorization": f"Bearer {credentials['token']}"},
            transport=httpx.MockTransport(self.api.handle),
        )

    def feeds(
        self, credentials: Mapping[str, str], options: Mapping[str, str], api_base: str | None
    ) -> Iterator[tuple[Feed, httpx.Client]]:
        if "token" not in credentials:
            return

        def fetch(client: httpx.Client, since: int) -> list[Any]:
            answer = client.get("/events", params={"since": since})
            answer.raise_for_status()
            events: list[Any] = answer.json()
            return events

        feed = Feed(self.name, fetch, lambda e: int(e["at"]), lambda e: str(e["id"]), 0)
        yield feed, self._client(credentials, api_base)

    def detail(self, credentials: Mapping[str, str], api_base: str | None, body: bytes) -> bytes:
        record_id = json.loads(body)["record"]
        with self._client(credentials, api_base) as client:
            answer = client.get(f"/records/{record_id}")
        if answer.status_code == 404:
            raise CannotComplete(f"record {record_id} is gone")
        answer.raise_for_status()
        return answer.content


def test_a_source_registered_from_a_test_runs_end_to_end(
    tmp_path: Path, sandbox: BackgroundSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the throwaway source in the registry, and a connection with its secrets
    api = FakeRecords()
    source = ThrowawaySource(api)
    assert isinstance(source, Polled | ThinEvents | Preparing)
    monkeypatch.setitem(SOURCES, source.name, source)
    tenant = Tenant(
        name="default",
        planhat_base_url=sandbox.url,
        planhat_token="token",
        secrets={"throwaway": "tw-secret", "throwaway:token": "tw-token"},
    )
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    box = SecretBox(Fernet.generate_key().decode())

    def connections(engine: Engine) -> Connections:
        return Connections(engine, box=lambda: box, default=lambda: tenant)

    config = EngineSettings(flush_linger=0.05, sweep_interval=1.0)
    runtime, dispatcher = embedded_runtime(url, connections, config, SourceApis())
    dispatcher.start()
    receiver = TestClient(
        create_web_app(
            connections=connections(runtime.engine),
            inbox=Inbox(ThreadedWriter(runtime.engine), dispatcher),
        )
    )
    try:
        # when: one change is delivered by webhook (thin: it names the record only) ...
        delivered = api.change("ev-1", "r1", "Acme", at=100)
        body = json.dumps(delivered).encode()
        signature = hmac.new(b"tw-secret", body, hashlib.sha256).hexdigest()
        answer = receiver.post(
            "/webhooks/default/throwaway",
            content=body,
            headers={"content-type": "application/json", "x-throwaway-signature": signature},
        )
        # ... and the feed brings it again with two more, one of which the hook refuses
        api.change("ev-2", "r2", "Globex", at=200)
        api.change("ev-3", "r3", "Refused", at=300)
        new = run_poll(runtime, SourceApis())
        drain_embedded(runtime.engine, dispatcher)

        # then
        assert answer.status_code == 202
        assert new == 2  # ev-1 was stored by the webhook already
        with PlanhatClient("check", base_url=sandbox.url) as planhat:
            companies = {c["sourceId"]: c for c in planhat.list("companies")}
        assert {key: c["domains"] for key, c in companies.items()} == {
            "tw-r1": ["acme.example"],
            "tw-r2": ["globex.example"],
        }
        with session_scope(runtime.engine) as session:
            letters = list(session.exec(select(DeadLetter)))
            statuses = sorted(e.status for e in session.exec(select(InboxEvent)))
        assert [(d.key, d.reason) for d in letters] == [
            ("sourceId=tw-r3", "the hook refuses Refused")
        ]
        assert statuses == ["done", "done", "done"]
        assert sorted(api.calls) == ["/events", "/records/r1", "/records/r2", "/records/r3"]
    finally:
        dispatcher.stop()
        runtime.engine.dispose()
