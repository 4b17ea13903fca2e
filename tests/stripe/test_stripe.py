"""The Stripe source so far: signatures as Stripe's SDKs check them, and the first mappings
(customers, subscriptions, cancellations) on Stripe's own published payloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.change import Change, MappingError
from connectors.stripe.mapping import changes
from connectors.stripe.subscriptions import item_mrr
from connectors.stripe.verify import sign, verify
from connectors.webhooks import SignatureError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe"
EVENTS = FIXTURES / "stripe-events-2020-08-27"
SECRET = "whsec_test_secret"
NOW = 1_700_000_000


def event_body(name: str) -> bytes:
    return (EVENTS / f"{name}.json").read_bytes()


def latest_event(kind: str, resource: str) -> bytes:
    """An event around fixtures3.json's object: the latest API version's payload shape."""
    resources = json.loads((FIXTURES / "stripe-objects-latest" / "fixtures3.json").read_text())
    event = {"id": f"evt_{resource}", "type": kind, "created": 1721954060,
             "data": {"object": resources["resources"][resource]}}  # fmt: skip
    return json.dumps(event).encode()


def mapped(body: bytes) -> list[tuple[str, str, str, dict[str, Any], int]]:
    return [(c.model, c.key_field, c.key, dict(c.fields), c.version) for c in changes(body, "e")]


# --- signatures -------------------------------------------------------------------------


def test_a_correctly_signed_event_gives_its_event_id() -> None:
    body = event_body("customer.created")

    event_id = verify({"Stripe-Signature": sign(SECRET, NOW, body)}, body, SECRET, NOW)

    assert event_id == json.loads(body)["id"]


def test_any_of_several_v1_signatures_may_match_and_v0_is_ignored() -> None:
    body = event_body("customer.created")
    good = sign(SECRET, NOW, body).split(",")[1]
    header = f"t={NOW},v0=ffff,v1=deadbeef,{good}"

    assert verify({"Stripe-Signature": header}, body, SECRET, NOW).startswith("evt_")


def _header(kind: str, body: bytes) -> dict[str, str]:
    return {
        "missing": {},
        "no v1": {"Stripe-Signature": f"t={NOW}"},
        "no t": {"Stripe-Signature": "v1=abc"},
        "bad t": {"Stripe-Signature": "t=soon,v1=abc"},
        "other secret": {"Stripe-Signature": sign("whsec_other", NOW, body)},
        "stale": {"Stripe-Signature": sign(SECRET, NOW - 301, body)},
    }[kind]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "missing Stripe-Signature"),
        ("no v1", "needs t= and at least one v1="),
        ("no t", "needs t= and at least one v1="),
        ("bad t", "not a Unix time"),
        ("other secret", "no Stripe-Signature v1 matches"),
        ("stale", "more than 300 s"),
    ],
)
def test_a_bad_missing_or_stale_signature_is_refused(kind: str, reason: str) -> None:
    body = event_body("customer.created")

    with pytest.raises(SignatureError, match=reason):
        verify(_header(kind, body), body, SECRET, NOW)


def test_a_body_changed_after_signing_is_refused() -> None:
    body = event_body("customer.created")
    header = sign(SECRET, NOW, body)

    with pytest.raises(SignatureError, match="no Stripe-Signature v1 matches"):
        verify({"Stripe-Signature": header}, body.replace(b"cus_", b"cux_"), SECRET, NOW)


# --- mapping ----------------------------------------------------------------------------


def test_a_customer_becomes_a_company_keyed_by_its_stripe_id() -> None:
    assert mapped(event_body("customer.created")) == [
        ("companies", "externalId", "cus_00000000000000", {"name": "cus_00000000000000"},
         1648320107),
    ]  # fmt: skip


def test_a_customer_with_an_email_also_becomes_an_enduser() -> None:
    event = json.loads(event_body("customer.updated"))
    event["data"]["object"] |= {"email": "ada@acme.example", "name": "Acme"}

    assert mapped(json.dumps(event).encode()) == [
        ("companies", "externalId", "cus_00000000000000", {"name": "Acme"}, 1648320110),
        ("endusers", "sourceId", "stripe-cus_00000000000000",
         {"email": "ada@acme.example", "name": "Acme", "companyId": "extid-cus_00000000000000"},
         1648320110),
    ]  # fmt: skip


def test_a_subscription_becomes_one_license_per_item() -> None:
    assert mapped(event_body("customer.subscription.created")) == [
        ("licenses", "sourceId", "si_00000000000000", {
            "companyId": "extid-cus_00000000000000",
            "product": "prod_00000000000000",
            "_currency": "USD",
            "mrr": 15.0,
            "fromDate": "2022-03-26",
            "toDate": None,
            "renewalDate": "2022-04-26",
            "autoRenews": True,
            "renewalStatus": "ongoing",
            "status": "active",
        }, 1648320110),
    ]  # fmt: skip


def test_a_cancelled_subscription_ends_its_licenses_and_records_churn() -> None:
    [license_, churn] = mapped(event_body("customer.subscription.deleted"))

    assert license_[3] == {
        "companyId": "extid-cus_00000000000000",
        "product": "prod_00000000000000",
        "_currency": "USD",
        "mrr": 15.0,
        "fromDate": "2022-03-26",
        "renewalDate": "2022-04-26",
        "autoRenews": False,
        "status": "canceled",
        "renewalStatus": "lost",
        "toDate": "2022-03-26",
    }
    assert churn[:3] == ("churn", "sourceId", "stripe-churn-sub_000000000000000000000000")
    assert churn[3] == {
        "companyId": "extid-cus_00000000000000",
        "churnDate": "2022-03-26",
        "value": 15.0,
        "currency": "USD",
        "products": ["prod_00000000000000"],
    }


def test_the_latest_api_version_reads_the_period_from_the_item() -> None:
    body = latest_event("customer.subscription.updated", "subscription")

    [(model, _, key, fields, _)] = mapped(body)

    assert (model, key) == ("licenses", "si_QXhVnC2h0Jczwc")
    assert fields["renewalDate"] == "2000-12-08"  # items.data[0].current_period_end
    # The sample's payment collection is paused: no MRR earned while it is.
    assert (fields["mrr"], fields["status"]) == (0.0, "paused")


@pytest.mark.parametrize(
    ("interval", "count", "quantity", "amount", "mrr"),
    [("month", 1, 3, 1000, 30.0), ("year", 1, 1, 120000, 100.0), ("week", 1, 1, 1200, 52.0),
     ("month", 3, 1, 3000, 10.0), ("day", 1, 1, 100, 30.42)],
)  # fmt: skip
def test_mrr_is_normalised_to_a_month(
    interval: str, count: int, quantity: int, amount: int, mrr: float
) -> None:
    item = {"quantity": quantity, "price": {"unit_amount": amount,
            "recurring": {"interval": interval, "interval_count": count}}}  # fmt: skip

    assert item_mrr(item) == mrr


@pytest.mark.parametrize("name", ["charge.refunded", "customer.deleted"])
def test_an_event_type_not_mapped_yet_is_accepted_with_no_change(name: str) -> None:
    assert changes(event_body(name), "e") == []


def test_a_body_that_is_not_a_stripe_event_is_a_mapping_error() -> None:
    with pytest.raises(MappingError):
        changes(b'{"type": "customer.created"}', "e")


def test_every_change_is_keyed() -> None:
    for path in EVENTS.glob("*.json"):
        for change in changes(path.read_bytes(), "e"):
            assert isinstance(change, Change)
            assert change.key


def test_a_paid_invoice_becomes_a_planhat_invoice_and_its_one_off_line_a_sale() -> None:
    assert mapped(event_body("invoice.paid")) == [
        ("invoices", "extId", "in_000000000000000000000000", {
            "cId": "extid-cus_00000000000000",
            "currency": "USD",
            "status": "paid",
            "amountTotal": 20.0,
            "invoiceDate": 19077,  # 2022-03-26 as days since 1970-01-01
            "paidDate": 19077,
        }, 1648320015),
        ("sales", "sourceId", "stripe-sale-il_000000000000000000000000", {
            "companyId": "extid-cus_00000000000000",
            "_currency": "USD",
            "salesDate": "2022-03-26",
            "value": 20.0,
            "product": "prod_00000000000000",
            "description": "(created by Stripe CLI)",
        }, 1648320015),
    ]  # fmt: skip


def test_a_failed_payment_makes_the_invoice_overdue_and_no_sale() -> None:
    # charged automatically (no due_date): due when issued, and its payment failed
    [(model, _, _, fields, _)] = mapped(event_body("invoice.payment_failed"))

    assert (model, fields["status"], "paidDate" in fields) == ("invoices", "overdue", False)


def test_an_invoice_has_its_dates_as_day_numbers_in_both_api_versions() -> None:
    [(_, _, _, old, _)] = mapped(event_body("invoice.created"))
    [(_, _, key, new, _)] = mapped(latest_event("invoice.finalized", "invoice"))

    assert old["invoiceDate"] == 1648320110 // 86400
    assert (key, new["invoiceDate"], new["dueDate"]) == (
        "in_1Pgc6tB7WZ01zgkWu9fdqL6I",
        1234567890 // 86400,
        1234567890 // 86400,
    )
