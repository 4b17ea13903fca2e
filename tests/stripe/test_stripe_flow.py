"""Stripe events through the receiver and the embedded engine into the Planhat sandbox."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from connectors.planhat.client import PlanhatClient
from connectors.stripe.verify import sign
from state.db import session_scope
from state.tables import InboxEvent
from tests.stripe.test_stripe import event_body
from tests.test_dev_flow import STRIPE_SECRET, Embedded


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    system = Embedded(tmp_path)
    yield system
    system.close()


def post_stripe(system: Embedded, name: str) -> int:
    # The published fixtures all carry evt_000…: give each its own id, as Stripe would.
    event = json.loads(event_body(name))
    event["id"] = f"evt_{name}"
    body = json.dumps(event).encode()
    headers = {
        "content-type": "application/json",
        "stripe-signature": sign(STRIPE_SECRET, int(time.time()), body),
    }
    answer = system.http.post("/webhooks/default/stripe", content=body, headers=headers)
    return answer.status_code


def test_a_customer_its_subscription_and_a_paid_invoice_reach_planhat(embedded: Embedded) -> None:
    assert post_stripe(embedded, "customer.subscription.created") == 202  # before its customer
    assert post_stripe(embedded, "customer.created") == 202
    assert post_stripe(embedded, "invoice.paid") == 202
    assert post_stripe(embedded, "charge.refunded") == 202  # not mapped yet: kept, no change
    assert post_stripe(embedded, "customer.created") == 200  # a redelivery

    embedded.drain()

    with PlanhatClient("check", base_url=embedded.planhat_a.url) as planhat:
        company = planhat.get("companies", "extid-cus_00000000000000")
        license_ = planhat.get("licenses", "srcid-si_00000000000000")
        invoice = planhat.get("invoices", "extid-in_000000000000000000000000")
        sale = planhat.get("sales", "srcid-stripe-sale-il_000000000000000000000000")
    assert (invoice["cId"], invoice["amountPaid"], invoice["date"]) == (company["_id"], 20.0, 19077)
    assert (sale["companyId"], sale["value"], sale["salesDate"]) == (
        company["_id"],
        20.0,
        "2022-03-26",
    )
    assert license_["companyId"] == company["_id"]
    assert (license_["mrr"], license_["_currency"], license_["renewalDate"]) == (
        15.0,
        "USD",
        "2022-04-26",
    )


def test_a_stripe_event_with_a_bad_signature_is_refused_and_not_stored(
    embedded: Embedded,
) -> None:
    body = event_body("customer.created")
    headers = {
        "content-type": "application/json",
        "stripe-signature": sign("whsec_wrong", int(time.time()), body),
    }

    answer = embedded.http.post("/webhooks/default/stripe", content=body, headers=headers)

    assert answer.status_code == 401
    embedded.drain()
    with PlanhatClient("check", base_url=embedded.planhat_a.url) as planhat:
        assert list(planhat.list("companies")) == []


def _refused(kind: str, body: bytes) -> tuple[bytes, dict[str, str]]:
    now = int(time.time())
    headers = {"content-type": "application/json"}
    signature = {
        "wrong secret": sign("whsec_wrong", now, body),
        "tampered body": sign(STRIPE_SECRET, now, body),
        "stale timestamp": sign(STRIPE_SECRET, now - 301, body),
        "malformed header": "v1=abc,t=yesterday",
    }.get(kind)
    if signature:
        headers["stripe-signature"] = signature
    if kind == "tampered body":
        body = body.replace(b"cus_00000000000000", b"cus_00000000000001")
    return body, headers


@pytest.mark.parametrize(
    "kind",
    ["wrong secret", "tampered body", "stale timestamp", "missing header", "malformed header"],
)
def test_a_refused_stripe_event_is_a_401_and_stores_nothing(embedded: Embedded, kind: str) -> None:
    body, headers = _refused(kind, event_body("customer.created"))

    answer = embedded.http.post("/webhooks/default/stripe", content=body, headers=headers)

    assert answer.status_code == 401
    assert answer.json()["error"].startswith("signature refused")
    with session_scope(embedded.runtime.engine) as session:
        assert session.exec(select(InboxEvent)).first() is None


def test_a_stripe_event_type_not_mapped_is_accepted_and_recorded_as_ignored(
    embedded: Embedded,
) -> None:
    assert post_stripe(embedded, "charge.refunded") == 202

    embedded.drain()

    with session_scope(embedded.runtime.engine) as session:
        [event] = session.exec(select(InboxEvent))
    assert (event.event_id, event.status, event.error) == ("evt_charge.refunded", "ignored", None)
