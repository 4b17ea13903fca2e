"""Stripe events through the receiver and the embedded engine into the Planhat sandbox."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import select

from connectors.change import Change
from connectors.planhat.client import PlanhatClient
from connectors.sources import SOURCES
from connectors.stripe import StripeSource, mapping
from connectors.stripe.verify import sign
from state.db import session_scope
from state.tables import InboxEvent
from tests.stripe.test_stripe import event_body
from tests.test_dev_flow import STRIPE_SECRET, Embedded
from worker.pipeline.dlq import list_dead_letters, retry


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
    assert (invoice["cId"], invoice["status"], invoice["amountTotal"], invoice["invoiceDate"]) == (
        company["_id"], "paid", 20.0, 19077
    )  # fmt: skip
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


@dataclass(frozen=True, slots=True)
class StripeReadingPlanWithoutItems(StripeSource):
    """The Stripe mapping as a fix would have it: a subscription that lists no ``items``
    (the single-plan shape of older API versions) is read as one item, its own plan."""

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        event = json.loads(body)
        subscription = event["data"]["object"]
        if "items" not in subscription:
            item = {key: subscription[key] for key in ("id", "plan", "quantity")}
            subscription["items"] = {"object": "list", "data": [item]}
        return mapping.changes(json.dumps(event).encode(), event_id, options)


def test_a_signed_stripe_event_without_items_is_kept_as_a_dead_letter_and_lands_after_a_fix(
    embedded: Embedded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given its customer, and a subscription the mapping cannot read (no items)
    assert post_stripe(embedded, "customer.created") == 202
    event = json.loads(event_body("customer.subscription.created"))
    del event["data"]["object"]["items"]
    body = json.dumps(event).encode()
    headers = {
        "content-type": "application/json",
        "stripe-signature": sign(STRIPE_SECRET, int(time.time()), body),
    }

    # when Stripe sends it
    answer = embedded.http.post("/webhooks/default/stripe", content=body, headers=headers)
    embedded.drain()

    # then it is kept (Stripe would not resend it better) and buried with the reason
    assert answer.status_code == 202
    assert answer.json() == {"status": "accepted", "inbox_id": answer.json()["inbox_id"]}
    [letter] = list_dead_letters(embedded.runtime.engine)
    assert letter.reason.startswith("mapping failed: not a Stripe event we can read")
    assert "'items'" in letter.reason
    with session_scope(embedded.runtime.engine) as session:
        stored = session.get(InboxEvent, answer.json()["inbox_id"])
    assert stored is not None
    assert (stored.status, stored.body) == ("failed", body)
    with PlanhatClient("check", base_url=embedded.planhat_a.url) as planhat:
        assert [c["externalId"] for c in planhat.list("companies")] == ["cus_00000000000000"]
        assert list(planhat.list("licenses")) == []

    # when the mapping is fixed and the dead letter retried from the stored event
    monkeypatch.setitem(SOURCES, "stripe", StripeReadingPlanWithoutItems())
    defaults = embedded.runtime.clients.connections.options("default")
    [outcome] = retry(embedded.runtime.engine, [letter.id or 0], default_options=defaults)
    embedded.dispatcher.flush(outcome.connection, 0.0)  # as `dlq retry` asks the broker
    embedded.drain()

    # then its license reaches Planhat, on its company, and no dead letter is left
    assert outcome.result == "event re-run"
    assert list_dead_letters(embedded.runtime.engine) == []
    with PlanhatClient("check", base_url=embedded.planhat_a.url) as planhat:
        company = planhat.get("companies", "extid-cus_00000000000000")
        [license_] = planhat.list("licenses")
    assert license_["sourceId"] == "sub_000000000000000000000000"
    assert (license_["companyId"], license_["mrr"], license_["_currency"]) == (
        company["_id"],
        15.0,
        "USD",
    )
