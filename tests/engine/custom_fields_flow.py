"""The custom field rules flow for tests: stored events → ingest → flush → the Planhat
sandbox. Real Stripe payloads (../shared/fixtures, copied under tests/fixtures/stripe),
Typeform's documented example, and a Zendesk ticket as its REST API gives it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import Engine

from connectors.custom_fields.rules import new_rule
from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.connections import add_connection
from state.crypto import SecretBox
from state.db import session_scope
from state.inbox import store_event
from state.tables import InboxEvent
from tests.conftest import sandbox_stats
from worker.pipeline.batch import FlushPolicy
from worker.pipeline.flush import FLUSH_ORDER, flush_batch, prepare_hooks
from worker.pipeline.ingest import ingest
from worker.runtime.ratelimit import LocalRateLimiter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STRIPE = FIXTURES / "stripe" / "stripe-events-2020-08-27"
BOX = SecretBox(Fernet.generate_key().decode())


def rules(*specs: tuple[str, str, str, str]) -> dict[str, str]:
    return dict(new_rule(*spec).option for spec in specs)


SEGMENT = ("stripe", "customer.metadata.segment", "companies.custom.Segment", "text")
SEATS = ("stripe", "customer.metadata.seats", "companies.custom.Seats", "number")
SINCE = ("stripe", "customer.created", "companies.custom.Customer since", "date")
PLAN = ("typeform", "answer(ref=plan)", "nps.custom.Plan", "text")
EASE = ("typeform", "answer(ref=ease)", "nps.custom.Ease", "number")
ESCALATION = ("zendesk", "ticket.custom_fields[360001]", "tickets.custom.Escalation", "text")
TAGS = ("zendesk", "ticket.tags", "tickets.custom.Tags", "list")


def customer_event(customer: str, created: int, **metadata: str) -> bytes:
    event = json.loads((STRIPE / "customer.created.json").read_text())
    event["id"] = f"evt_{uuid.uuid4().hex[:24]}"
    event["created"] = created
    obj = event["data"]["object"]
    obj.update(id=customer, name=f"Customer {customer}", metadata=metadata)
    return json.dumps(event).encode()


def typeform_event() -> bytes:
    event = json.loads((FIXTURES / "typeform" / "webhook_example.json").read_text())
    event["form_response"]["answers"].append(
        {"type": "choice", "choice": {"label": "Pro"},
         "field": {"id": "Pl4n", "ref": "plan", "type": "multiple_choice"}}
    )  # fmt: skip
    return json.dumps(event).encode()


def zendesk_detail(escalation: str) -> bytes:
    """A completed Zendesk event: the ticket as REST gives it, with its requester."""
    return json.dumps(
        {
            "ticket": {
                "id": 42, "subject": "Login fails", "description": "…", "status": "open",
                "priority": "high", "requester_id": 7, "tags": ["vip", "sso"],
                "updated_at": "2026-11-20T10:00:00Z",
                "custom_fields": [{"id": 360001, "value": escalation}, {"id": 9, "value": None}],
            },
            "users": [{"id": 7, "email": "ada@acme.example"}],
        }
    ).encode()  # fmt: skip


def connect(engine: Engine, name: str, sandbox: BackgroundSandbox, options: dict[str, str]) -> None:
    add_connection(engine, BOX, name=name, planhat_base_url=sandbox.url, planhat_token="t",
                   secrets={}, options=options)  # fmt: skip


def receive(engine: Engine, connection: str, source: str, body: bytes, detail: bytes | None = None
            ) -> int:  # fmt: skip
    """Store a verified event (with its detail, as the worker completes a thin one) and
    ingest it."""
    with session_scope(engine) as session:
        inbox_id = store_event(session, connection=connection, source=source,
                               event_id=uuid.uuid4().hex, body=body)  # fmt: skip
        assert inbox_id is not None
        if detail is not None:
            event = session.get(InboxEvent, inbox_id)
            assert event is not None
            event.detail = detail
    with session_scope(engine) as session:
        ingest(session, inbox_id)
    return inbox_id


def flush(engine: Engine, planhat: PlanhatClient, connection: str) -> None:
    memo: dict[str, Any] = {}
    for _ in range(2):  # children whose company was written in the first round
        for model in FLUSH_ORDER:
            flush_batch(engine, planhat, LocalRateLimiter(rate_per_minute=1e6, burst=1000),
                        connection=connection, model=model, budget=connection,
                        policy=FlushPolicy(), hooks=prepare_hooks(model), memo=memo)  # fmt: skip


def custom_fields(planhat: PlanhatClient, *fields: tuple[str, str, str]) -> None:
    for parent, name, kind in fields:
        planhat.create("customfields", {"name": name, "parent": parent, "type": kind,
                                        "isHidden": False})  # fmt: skip


def custom_of(planhat: PlanhatClient, model: str) -> dict[str, dict[str, Any]]:
    """Each record's ``custom`` object, by its sourceId or externalId."""
    return {
        str(r.get("externalId") or r.get("sourceId")): r.get("custom") or {}
        for r in planhat.list(model)
    }


def writes(sandbox: BackgroundSandbox, model: str) -> int:
    counts = sandbox_stats(sandbox)["record_writes"]
    assert isinstance(counts, dict)
    return int(counts.get(model, 0))
