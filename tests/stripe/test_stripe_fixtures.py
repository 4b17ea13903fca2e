"""Every shared Stripe fixture, and the latest-version subscription, subscription item and
invoice objects from fixtures3.json, map to exactly the expected Planhat records.

Each expectation is a literal with every record, field and value, checked by hand against
the fixture's JSON and the rules in connectors/billing.py: MRR is unit amount * quantity /
100 per month; license and churn dates are ISO days; invoice dates are day numbers (unix //
86400: 1648320012 → 19077, 1234567890 → 14288); an invoice carries only the fields Planhat
documents, its status one of pending, paid or overdue (connectors/stripe/invoices.py
``planhat_status``); the version is the event's ``created``.
An event type not mapped (charge.refunded, customer.deleted) maps to nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.stripe.test_stripe import EVENTS, FIXTURES, event_body, latest_event, mapped

Expected = list[tuple[str, str, str, dict[str, Any], int]]

# invoice.finalized, invoice.paid and invoice.payment_succeeded carry the same paid invoice:
# created 1648320012 and paid 1648320013 (day 19077, 2022-03-26); its one line is an invoice
# item at a one-off price, so it is also a sale.
PAID_INVOICE: Expected = [
    ("invoices", "extId", "in_000000000000000000000000", {
        "cId": "extid-cus_00000000000000", "currency": "USD", "status": "paid",
        "amountTotal": 20.0, "invoiceDate": 19077, "paidDate": 19077,
    }, 1648320015),
    ("sales", "sourceId", "stripe-sale-il_000000000000000000000000", {
        "companyId": "extid-cus_00000000000000", "_currency": "USD", "salesDate": "2022-03-26",
        "value": 20.0, "product": "prod_00000000000000", "description": "(created by Stripe CLI)",
    }, 1648320015),
]  # fmt: skip

EXPECTED: dict[str, Expected] = {
    "charge.refunded": [],
    "customer.created": [
        ("companies", "externalId", "cus_00000000000000", {"name": "cus_00000000000000"},
         1648320107),
    ],
    "customer.deleted": [],
    "customer.updated": [
        ("companies", "externalId", "cus_00000000000000", {"name": "cus_00000000000000"},
         1648320110),
    ],
    # One $15.00/month item (price unit_amount 1500 * 1), started 1648320110, period end
    # 1650998510 (2022-04-26).
    "customer.subscription.created": [
        ("licenses", "sourceId", "si_00000000000000", {
            "companyId": "extid-cus_00000000000000", "product": "prod_00000000000000",
            "_currency": "USD", "mrr": 15.0, "fromDate": "2022-03-26", "toDate": None,
            "renewalDate": "2022-04-26", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active",
        }, 1648320110),
    ],
    "customer.subscription.updated": [
        ("licenses", "sourceId", "si_00000000000000", {
            "companyId": "extid-cus_00000000000000", "product": "prod_00000000000000",
            "_currency": "USD", "mrr": 15.0, "fromDate": "2022-03-26", "toDate": None,
            "renewalDate": "2022-04-26", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active",
        }, 1648320106),
    ],
    # Cancelled at once: ended_at 1648320097 (2022-03-26); the $15.00 lost is the churn.
    "customer.subscription.deleted": [
        ("licenses", "sourceId", "si_00000000000000", {
            "companyId": "extid-cus_00000000000000", "product": "prod_00000000000000",
            "_currency": "USD", "mrr": 15.0, "fromDate": "2022-03-26", "toDate": "2022-03-26",
            "renewalDate": "2022-04-26", "autoRenews": False, "renewalStatus": "lost",
            "status": "canceled",
        }, 1648320097),
        ("churn", "sourceId", "stripe-churn-sub_000000000000000000000000", {
            "companyId": "extid-cus_00000000000000", "churnDate": "2022-03-26", "value": 15.0,
            "currency": "USD", "products": ["prod_00000000000000"],
        }, 1648320097),
    ],
    # An old payload (plans only; "start" 1381080623, not start_date) in trial: two
    # licenses at MRR 0 (trials=zero), period end 1383759023 (2013-11-06). Both take the
    # first item's currency, though the second plan says "eur".
    "customer.subscription.trial_will_end": [
        ("licenses", "sourceId", "si_00000000000000", {
            "companyId": "extid-cus_00000000000000", "product": "pr_00000000000000",
            "_currency": "USD", "mrr": 0.0, "fromDate": "2013-10-06", "toDate": None,
            "renewalDate": "2013-11-06", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "trialing",
        }, 1326853478),
        ("licenses", "sourceId", "si_00000000000001", {
            "companyId": "extid-cus_00000000000000", "product": "pr_00000000000001",
            "_currency": "USD", "mrr": 0.0, "fromDate": "2013-10-06", "toDate": None,
            "renewalDate": "2013-11-06", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "trialing",
        }, 1326853478),
    ],
    # The draft of the first subscription invoice: not issued yet, so pending; no due date,
    # nothing paid.
    "invoice.created": [
        ("invoices", "extId", "in_000000000000000000000000", {
            "cId": "extid-cus_00000000000000", "currency": "USD", "status": "pending",
            "amountTotal": 15.0, "invoiceDate": 19077,
        }, 1648320110),
    ],
    "invoice.updated": [
        ("invoices", "extId", "in_000000000000000000000000", {
            "cId": "extid-cus_00000000000000", "currency": "USD", "status": "pending",
            "amountTotal": 15.0, "invoiceDate": 19077,
        }, 1648320099),
    ],
    "invoice.finalized": PAID_INVOICE,
    "invoice.paid": PAID_INVOICE,
    "invoice.payment_succeeded": PAID_INVOICE,
    # Another invoice under the same anonymised id: open, charged automatically (no due
    # date: due when issued) and its payment failed, so overdue; nothing paid, so no sale.
    "invoice.payment_failed": [
        ("invoices", "extId", "in_000000000000000000000000", {
            "cId": "extid-cus_00000000000000", "currency": "USD", "status": "overdue",
            "amountTotal": 20.0, "invoiceDate": 19077,
        }, 1648320009),
    ],
    # fixtures3.json (the latest API version). The subscription is active with payment
    # collection paused (MRR 0, status "paused"); cancel_at 1234567890 → toDate 2009-02-13
    # and no auto-renewal; the period end is the item's (976287773 → 2000-12-08).
    "fixtures3 subscription": [
        ("licenses", "sourceId", "si_QXhVnC2h0Jczwc", {
            "companyId": "extid-cus_QXg1o8vcGmoR32", "product": "prod_QXg1hqf4jFNsqG",
            "_currency": "USD", "mrr": 0.0, "fromDate": "2009-02-13", "toDate": "2009-02-13",
            "renewalDate": "2000-12-08", "autoRenews": False, "renewalStatus": "ongoing",
            "status": "paused",
        }, 1721954060),
    ],
    "fixtures3 subscription_item": [
        ("licenses", "sourceId", "si_QXhVBoJ7NQdNXh", {
            "companyId": "extid-cus_x", "product": "prod_QXg1hqf4jFNsqG",
            "_currency": "USD", "mrr": 0.0, "fromDate": "2009-02-13", "toDate": "2009-02-13",
            "renewalDate": "2000-12-08", "autoRenews": False, "renewalStatus": "ongoing",
            "status": "paused",
        }, 1721954060),
    ],
    # A draft of 1000 cents, created and due 1234567890 (day 14288). The object's own
    # status decides, whatever the event: a draft is pending under invoice.paid and
    # invoice.payment_failed alike (nothing was issued, so nothing is overdue); no sale.
    "fixtures3 invoice.paid": [
        ("invoices", "extId", "in_1Pgc6tB7WZ01zgkWu9fdqL6I", {
            "cId": "extid-cus_QXg1o8vcGmoR32", "currency": "USD", "status": "pending",
            "amountTotal": 10.0, "invoiceDate": 14288, "dueDate": 14288,
        }, 1721954060),
    ],
    "fixtures3 invoice.payment_failed": [
        ("invoices", "extId", "in_1Pgc6tB7WZ01zgkWu9fdqL6I", {
            "cId": "extid-cus_QXg1o8vcGmoR32", "currency": "USD", "status": "pending",
            "amountTotal": 10.0, "invoiceDate": 14288, "dueDate": 14288,
        }, 1721954060),
    ],
}  # fmt: skip


def _subscription_item_event() -> bytes:
    """fixtures3's subscription with fixtures3's subscription item as its only item, for
    customer cus_x."""
    resources = json.loads((FIXTURES / "stripe-objects-latest" / "fixtures3.json").read_text())
    event = json.loads(latest_event("customer.subscription.updated", "subscription"))
    event["data"]["object"]["items"]["data"] = [resources["resources"]["subscription_item"]]
    event["data"]["object"]["customer"] = "cus_x"
    return json.dumps(event).encode()


def body_of(case: str) -> bytes:
    latest = {
        "fixtures3 subscription": ("customer.subscription.updated", "subscription"),
        "fixtures3 invoice.paid": ("invoice.paid", "invoice"),
        "fixtures3 invoice.payment_failed": ("invoice.payment_failed", "invoice"),
    }
    if case == "fixtures3 subscription_item":
        return _subscription_item_event()
    if case in latest:
        return latest_event(*latest[case])
    return event_body(case)


def test_every_shared_fixture_has_an_expectation() -> None:
    shared = {path.stem for path in EVENTS.glob("*.json")}

    assert len(shared) == 14
    assert shared <= EXPECTED.keys()


@pytest.mark.parametrize("case", list(EXPECTED))
def test_a_fixture_maps_to_exactly_the_expected_records(case: str) -> None:
    assert mapped(body_of(case)) == EXPECTED[case]
