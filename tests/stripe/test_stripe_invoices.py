"""A Stripe invoice as Planhat's invoice: only the documented fields, and Stripe's status as
pending, paid or overdue (connectors/stripe/invoices.py ``planhat_status``).

Every case starts from the shared fixture ``invoice.payment_failed`` (open, charged
automatically, one failed attempt, created 1648320007 = day 19077) or ``invoice.paid``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.planhat.models import MODELS
from tests.stripe.test_stripe import EVENTS, mapped
from tests.stripe.test_stripe_revenue import rejected

INVOICES = MODELS["invoices"]
DAY = 86_400


def invoice_event(kind: str = "invoice.updated", **invoice: Any) -> dict[str, Any]:
    """The payment_failed fixture's open invoice under ``kind``, its fields set to
    ``invoice``; the event is created a day after the invoice (day 19078)."""
    event: dict[str, Any] = json.loads((EVENTS / "invoice.payment_failed.json").read_text())
    event["type"] = kind
    event["created"] = event["data"]["object"]["created"] + DAY
    event["data"]["object"] |= invoice
    return event


def status_of(event: dict[str, Any]) -> str:
    [(model, _, _, fields, _), *sales] = mapped(json.dumps(event).encode())
    assert model == "invoices"
    assert not sales or fields["status"] == "paid"  # a sale only once paid
    status: str = fields["status"]
    return status


def test_every_invoice_sends_only_fields_planhat_documents() -> None:
    # the registry's invoice fields (https://www.planhat.com/developers/api/invoice)
    assert INVOICES.fields is not None
    sent = 0
    for path in EVENTS.glob("invoice.*.json"):
        for model, _, _, fields, _ in mapped(path.read_bytes()):
            if model == "invoices":
                sent += 1
                assert set(fields) <= INVOICES.fields - {"extId"}, path.name
                assert not set(fields) & INVOICES.generated, path.name
                assert fields["status"] in ("pending", "paid", "overdue"), path.name
    assert sent == 6


@pytest.mark.parametrize(
    ("invoice", "kind", "status"),
    [
        ({"status": "paid"}, "invoice.paid", "paid"),
        ({"status": "draft", "attempt_count": 0}, "invoice.created", "pending"),
        # charged automatically (no due_date): due when issued
        ({"attempt_count": 0}, "invoice.finalized", "pending"),
        ({"attempt_count": 1}, "invoice.updated", "overdue"),
        ({"attempt_count": 0}, "invoice.payment_failed", "overdue"),
        # sent to be paid by a due date: overdue from the day after it
        ({"collection_method": "send_invoice", "due_date": 1648320007}, "invoice.updated",
         "overdue"),
        ({"collection_method": "send_invoice", "due_date": 1648320007 + DAY}, "invoice.updated",
         "pending"),
        ({"collection_method": "send_invoice", "due_date": 1648320007 + 9 * DAY},
         "invoice.payment_failed", "pending"),
        ({"status": "uncollectible"}, "invoice.marked_uncollectible", "overdue"),
    ],
)  # fmt: skip
def test_stripes_invoice_status_becomes_pending_paid_or_overdue(
    invoice: dict[str, Any], kind: str, status: str
) -> None:
    assert status_of(invoice_event(kind, **invoice)) == status


def test_a_voided_invoice_is_a_dead_letter_saying_what_to_do() -> None:
    reason = rejected(invoice_event("invoice.voided", status="void"))

    assert reason.startswith("Stripe invoice in_000000000000000000000000 is void")
    assert "delete it in Planhat" in reason


def test_a_status_stripe_does_not_document_is_a_dead_letter() -> None:
    reason = rejected(invoice_event(status="settled"))

    assert reason == (
        "Stripe invoice in_000000000000000000000000 has a status we do not know: 'settled'"
    )


def test_an_overdue_invoice_once_paid_is_paid_with_its_paid_date() -> None:
    paid = invoice_event("invoice.paid", status="paid", attempt_count=2)
    paid["data"]["object"]["status_transitions"]["paid_at"] = 1648320007 + 3 * DAY

    [(_, _, _, fields, _), *_] = mapped(json.dumps(paid).encode())

    assert (fields["status"], fields["paidDate"]) == ("paid", 19077 + 3)
