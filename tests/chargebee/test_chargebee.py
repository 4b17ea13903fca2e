"""The Chargebee source: HTTP Basic authentication, and the mapping of every fixture event
(tests/fixtures/chargebee, one consistent story) by the shared billing rules."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.change import MappingError
from connectors.chargebee.mapping import changes
from connectors.chargebee.verify import basic_auth, verify
from connectors.webhooks import SignatureError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chargebee"
EVENT_FILES = sorted(p for p in FIXTURES.glob("*.json") if p.name != "events_list.json")
SECRET = "hook-user:hook-pass"
NOW = 1_700_000_000.0
CUSTOMER = "16CRibSAnkR8R2Nq"
SUBSCRIPTION = "16CRibSAnkR9TeX3"
GROWTH = f"chargebee-{SUBSCRIPTION}-growth-USD-Monthly"
SUPPORT = f"chargebee-{SUBSCRIPTION}-priority-support-USD-Monthly"

Mapped = tuple[str, str, str, dict[str, Any], int]


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def body(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def mapped(raw: bytes, options: dict[str, str] | None = None) -> list[Mapped]:
    return [
        (c.model, c.key_field, c.key, dict(c.fields), c.version) for c in changes(raw, "e", options)
    ]


def encoded(event_: dict[str, Any]) -> bytes:
    return json.dumps(event_).encode()


# --- authentication ---------------------------------------------------------------------


def test_the_right_credentials_give_the_event_id() -> None:
    headers = {"Authorization": basic_auth("hook-user", "hook-pass")}

    assert verify(headers, body("customer_created"), SECRET, NOW) == "ev_16CRibSAnkR8S0a1"


def test_the_authorization_header_is_found_whatever_its_case() -> None:
    headers = {"authorization": basic_auth("hook-user", "hook-pass")}

    assert verify(headers, body("customer_created"), SECRET, NOW) == "ev_16CRibSAnkR8S0a1"


def test_basic_auth_encodes_user_colon_password() -> None:
    assert (
        basic_auth("hook-user", "hook-pass")
        == "Basic " + base64.b64encode(b"hook-user:hook-pass").decode()
    )


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Authorization": basic_auth("hook-user", "wrong-pass")}, "wrong Chargebee webhook"),
        ({"Authorization": basic_auth("other-user", "hook-pass")}, "wrong Chargebee webhook"),
        ({"Authorization": basic_auth("hook-user", "")}, "wrong Chargebee webhook"),
        ({}, "missing Authorization header"),
        ({"Authorization": ""}, "missing Authorization header"),
        ({"Authorization": "Bearer x"}, "must be HTTP Basic"),
        ({"Authorization": "Basic"}, "must be HTTP Basic"),
        ({"Authorization": "Basic !!!"}, "not base64"),
    ],
    ids=["wrong password", "wrong username", "empty password", "missing", "empty",
         "bearer", "basic without credentials", "not base64"],
)  # fmt: skip
def test_wrong_or_missing_credentials_are_refused(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify(headers, body("customer_created"), SECRET, NOW)


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"event_type": "customer_created"}'])
def test_an_authenticated_body_that_is_not_an_event_is_refused(raw: bytes) -> None:
    headers = {"Authorization": basic_auth("hook-user", "hook-pass")}

    with pytest.raises(SignatureError, match="not a Chargebee event"):
        verify(headers, raw, SECRET, NOW)


# --- mapping: every fixture -------------------------------------------------------------

# Records that several events carry, the same each time.
COMPANY: Mapped = (
    "companies", "externalId", "16CRibSAnkR8R2Nq", {"name": "Acme Analytics"}, 1709283600214
)  # fmt: skip
ENDUSER: Mapped = ("endusers", "sourceId", "chargebee-16CRibSAnkR8R2Nq", {
    "email": "jane.doe@acme-analytics.example", "name": "Jane Doe",
    "companyId": "extid-16CRibSAnkR8R2Nq"
}, 1709283600214)  # fmt: skip
COMPANY_LTD: Mapped = (
    "companies", "externalId", "16CRibSAnkR8R2Nq", {"name": "Acme Analytics Ltd"}, 1709629200532
)  # fmt: skip
ENDUSER_LTD: Mapped = ("endusers", "sourceId", "chargebee-16CRibSAnkR8R2Nq", {
    "email": "jane.doe@acme-analytics.example", "name": "Jane Doe",
    "companyId": "extid-16CRibSAnkR8R2Nq"
}, 1709629200532)  # fmt: skip
# Invoices carry only the fields Planhat documents; Chargebee's status as Planhat's
# (connectors/chargebee/mapping.py INVOICE_STATUSES: paid → paid, payment_due → overdue).
INVOICE_1001_PAID: Mapped = ("invoices", "extId", "1001", {
    "cId": "extid-16CRibSAnkR8R2Nq", "currency": "USD", "status": "paid", "amountTotal": 594.0,
    "invoiceDate": 19797, "dueDate": 19797, "paidDate": 19797,
}, 1710493205418)  # fmt: skip
ONBOARDING_SALE: Mapped = ("sales", "sourceId", "chargebee-sale-li_16CRibSAnkRE1001c", {
    "companyId": "extid-16CRibSAnkR8R2Nq", "_currency": "USD", "salesDate": "2024-03-15",
    "value": 250.0, "product": "onboarding-fee-USD", "description": "Onboarding Fee"
}, 1710493205418)  # fmt: skip
INVOICE_1002_DUE: Mapped = ("invoices", "extId", "1002", {
    "cId": "extid-16CRibSAnkR8R2Nq", "currency": "USD", "status": "overdue", "amountTotal": 491.0,
    "invoiceDate": 19828, "dueDate": 19828,
}, 1713171605905)  # fmt: skip

# Each event file's changes, in the story's order (README.md).
EXPECTED: dict[str, list[Mapped]] = {
    "customer_created": [
        COMPANY,
        ENDUSER,
    ],
    "subscription_created": [
        COMPANY,
        ENDUSER,
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "growth-USD-Monthly",
            "_currency": "USD", "mrr": 0.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-03-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "in_trial"
        }, 1709283605107),
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "priority-support-USD-Monthly",
            "_currency": "USD", "mrr": 0.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-03-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "in_trial"
        }, 1709283605107),
    ],
    "customer_changed": [
        COMPANY_LTD,
        ENDUSER_LTD,
    ],
    "subscription_activated": [
        COMPANY_LTD,
        ENDUSER_LTD,
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "growth-USD-Monthly",
            "_currency": "USD", "mrr": 245.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-04-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1710493205402),
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "priority-support-USD-Monthly",
            "_currency": "USD", "mrr": 99.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-04-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1710493205402),
        INVOICE_1001_PAID,
        ONBOARDING_SALE,
    ],
    "invoice_generated": [
        INVOICE_1001_PAID,
        ONBOARDING_SALE,
    ],
    "payment_succeeded": [
        COMPANY_LTD,
        ENDUSER_LTD,
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "growth-USD-Monthly",
            "_currency": "USD", "mrr": 245.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-04-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1710493205402),
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "priority-support-USD-Monthly",
            "_currency": "USD", "mrr": 99.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-04-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1710493205402),
        INVOICE_1001_PAID,
        ONBOARDING_SALE,
    ],
    "subscription_changed": [
        COMPANY_LTD,
        ENDUSER_LTD,
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "growth-USD-Monthly",
            "_currency": "USD", "mrr": 392.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-04-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1711962000655),
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "priority-support-USD-Monthly",
            "_currency": "USD", "mrr": 99.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-04-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1711962000655),
    ],
    "subscription_renewed": [
        COMPANY_LTD,
        ENDUSER_LTD,
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "growth-USD-Monthly",
            "_currency": "USD", "mrr": 392.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-05-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1713171605950),
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "priority-support-USD-Monthly",
            "_currency": "USD", "mrr": 99.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-05-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1713171605950),
        INVOICE_1002_DUE,
    ],
    "payment_failed": [
        COMPANY_LTD,
        ENDUSER_LTD,
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "growth-USD-Monthly",
            "_currency": "USD", "mrr": 392.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-05-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1713171605950),
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "priority-support-USD-Monthly",
            "_currency": "USD", "mrr": 99.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-05-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1713171605950),
        INVOICE_1002_DUE,
    ],
    "invoice_updated": [
        ("invoices", "extId", "1002", {
            "cId": "extid-16CRibSAnkR8R2Nq", "currency": "USD", "status": "paid",
            "amountTotal": 491.0, "invoiceDate": 19828, "dueDate": 19828, "paidDate": 19831,
        }, 1713430805087),
    ],
    "subscription_paused": [
        COMPANY_LTD,
        ENDUSER_LTD,
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "growth-USD-Monthly",
            "_currency": "USD", "mrr": 0.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-06-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "paused"
        }, 1715763605038),
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "priority-support-USD-Monthly",
            "_currency": "USD", "mrr": 0.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-06-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "paused"
        }, 1715763605038),
    ],
    "subscription_resumed": [
        COMPANY_LTD,
        ENDUSER_LTD,
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "growth-USD-Monthly",
            "_currency": "USD", "mrr": 392.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-07-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1718442005290),
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "priority-support-USD-Monthly",
            "_currency": "USD", "mrr": 99.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-07-15", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1718442005290),
        ("invoices", "extId", "1003", {
            "cId": "extid-16CRibSAnkR8R2Nq", "currency": "USD", "status": "paid",
            "amountTotal": 491.0, "invoiceDate": 19889, "dueDate": 19889, "paidDate": 19889,
        }, 1718442005264),
    ],
    "subscription_cancellation_scheduled": [
        COMPANY_LTD,
        ENDUSER_LTD,
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "growth-USD-Monthly",
            "_currency": "USD", "mrr": 392.0, "fromDate": "2024-03-01", "toDate": "2024-07-15",
            "renewalDate": "2024-07-15", "autoRenews": False, "renewalStatus": "ongoing",
            "status": "non_renewing"
        }, 1719824400512),
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "priority-support-USD-Monthly",
            "_currency": "USD", "mrr": 99.0, "fromDate": "2024-03-01", "toDate": "2024-07-15",
            "renewalDate": "2024-07-15", "autoRenews": False, "renewalStatus": "ongoing",
            "status": "non_renewing"
        }, 1719824400512),
    ],
    "subscription_cancelled": [
        COMPANY_LTD,
        ENDUSER_LTD,
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "growth-USD-Monthly",
            "_currency": "USD", "mrr": 392.0, "fromDate": "2024-03-01", "toDate": "2024-07-15",
            "renewalDate": "2024-07-15", "autoRenews": False, "renewalStatus": "lost",
            "status": "cancelled"
        }, 1721034005144),
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "priority-support-USD-Monthly",
            "_currency": "USD", "mrr": 99.0, "fromDate": "2024-03-01", "toDate": "2024-07-15",
            "renewalDate": "2024-07-15", "autoRenews": False, "renewalStatus": "lost",
            "status": "cancelled"
        }, 1721034005144),
        ("churn", "sourceId", "chargebee-churn-16CRibSAnkR9TeX3", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "churnDate": "2024-07-15", "value": 491.0,
            "currency": "USD", "products": ["growth-USD-Monthly", "priority-support-USD-Monthly"],
            "reasons": ["Budget constraints"]
        }, 1721034005144),
    ],
    "subscription_reactivated": [
        COMPANY_LTD,
        ENDUSER_LTD,
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "growth-USD-Monthly",
            "_currency": "USD", "mrr": 392.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-09-01", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1722502800760),
        ("licenses", "sourceId", "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly", {
            "companyId": "extid-16CRibSAnkR8R2Nq", "product": "priority-support-USD-Monthly",
            "_currency": "USD", "mrr": 99.0, "fromDate": "2024-03-01", "toDate": None,
            "renewalDate": "2024-09-01", "autoRenews": True, "renewalStatus": "ongoing",
            "status": "active"
        }, 1722502800760),
        ("invoices", "extId", "1004", {
            "cId": "extid-16CRibSAnkR8R2Nq", "currency": "USD", "status": "paid",
            "amountTotal": 491.0, "invoiceDate": 19936, "dueDate": 19936, "paidDate": 19936,
        }, 1722502800731),
    ],
}  # fmt: skip


def test_every_event_file_has_its_expected_changes_listed() -> None:
    assert sorted(EXPECTED) == [p.stem for p in EVENT_FILES]
    assert len(EXPECTED) == 15


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_maps_to_exactly_its_expected_changes(name: str) -> None:
    assert mapped(body(name)) == EXPECTED[name]


def test_each_change_carries_the_event_id_from_the_envelope() -> None:
    for path in EVENT_FILES:
        event_id = json.loads(path.read_bytes())["id"]
        assert {c.event_id for c in changes(path.read_bytes(), "e")} == {event_id}, path.name


# --- options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("company_key", "extra"),
    [("cf_account_id", {"cf_account_id": "ACC-42"}),
     ("meta_data.account_id", {"meta_data": {"account_id": "ACC-42"}})],
)  # fmt: skip
def test_a_company_key_field_makes_the_customer_id_the_source_id(
    company_key: str, extra: dict[str, Any]
) -> None:
    customer_created = event("customer_created")
    customer_created["content"]["customer"] |= extra

    assert mapped(encoded(customer_created), {"company_key": company_key}) == [
        ("companies", "sourceId", CUSTOMER,
         {"name": "Acme Analytics", "externalId": "ACC-42"}, 1709283600214),
        ("endusers", "sourceId", f"chargebee-{CUSTOMER}",
         {"email": "jane.doe@acme-analytics.example", "name": "Jane Doe",
          "companyId": f"srcid-{CUSTOMER}"}, 1709283600214),
    ]  # fmt: skip


@pytest.mark.parametrize("company_key", ["cf_account_id", "meta_data.account_id"])
def test_with_a_company_key_field_licenses_and_invoices_refer_to_the_source_id(
    company_key: str,
) -> None:
    options = {"company_key": company_key}
    activated = mapped(body("subscription_activated"), options)

    references = {
        model: fields.get("companyId") or fields.get("cId")
        for model, _, _, fields, _ in activated
        if model != "companies"
    }
    assert references == dict.fromkeys(
        ["endusers", "licenses", "invoices", "sales"], f"srcid-{CUSTOMER}"
    )
    # the customer here has no such field: the company gets no externalId
    assert activated[0] == (
        "companies", "sourceId", CUSTOMER, {"name": "Acme Analytics Ltd"}, 1709629200532
    )  # fmt: skip
    [churn] = [r for r in mapped(body("subscription_cancelled"), options) if r[0] == "churn"]
    assert churn[3]["companyId"] == f"srcid-{CUSTOMER}"


def test_product_name_item_drops_chargebees_currency_and_period_suffix() -> None:
    licenses = [
        (key, fields["product"])
        for model, _, key, fields, _ in mapped(
            body("subscription_changed"), {"product_name": "item"}
        )
        if model == "licenses"
    ]

    # the product changes, the license keys do not
    assert licenses == [(GROWTH, "growth"), (SUPPORT, "priority-support")]


def test_trials_full_gives_a_trial_its_prices_mrr() -> None:
    licenses = [
        r for r in mapped(body("subscription_created"), {"trials": "full"}) if r[0] == "licenses"
    ]

    assert [(key, fields["mrr"], fields["status"]) for _, _, key, fields, _ in licenses] == [
        (GROWTH, 245.0, "in_trial"),
        (SUPPORT, 99.0, "in_trial"),
    ]


def test_trials_skip_makes_no_license_for_a_trial_but_keeps_its_customer() -> None:
    assert mapped(body("subscription_created"), {"trials": "skip"}) == [COMPANY, ENDUSER]


def test_trials_skip_leaves_an_active_subscription_alone() -> None:
    assert (
        mapped(body("subscription_activated"), {"trials": "skip"})
        == EXPECTED["subscription_activated"]
    )


def test_a_trial_cancelled_before_it_ends_loses_its_licenses_but_is_no_churn() -> None:
    created = event("subscription_created")
    created["content"]["subscription"] |= {"status": "cancelled", "cancelled_at": 1709900000}

    records = mapped(encoded(created))

    assert [r[0] for r in records] == ["companies", "endusers", "licenses", "licenses"]
    assert [(r[3]["mrr"], r[3]["renewalStatus"], r[3]["toDate"]) for r in records[2:]] == [
        (0.0, "lost", "2024-03-08"),
        (0.0, "lost", "2024-03-08"),
    ]


# --- what is not mapped, and what cannot be read ----------------------------------------


def test_an_event_type_not_mapped_gives_no_change() -> None:
    card_added = event("customer_changed")
    card_added["event_type"] = "card_added"

    assert changes(encoded(card_added), "e") == []


@pytest.mark.parametrize("missing", ["content", "occurred_at"])
def test_an_event_missing_content_or_occurred_at_is_a_mapping_error(missing: str) -> None:
    broken = event("subscription_activated")
    del broken[missing]

    with pytest.raises(MappingError, match="not a Chargebee event we can read"):
        changes(encoded(broken), "e")


@pytest.mark.parametrize("raw", [b"not json", b"[]", b"{}"])
def test_a_body_that_is_not_an_event_is_a_mapping_error(raw: bytes) -> None:
    with pytest.raises(MappingError):
        changes(raw, "e")


# --- amounts: Product Catalog 1.0, periods, Chargebee's own MRR -------------------------


def _subscription_event(subscription: dict[str, Any]) -> bytes:
    base = {"id": "sub_1", "customer_id": "cust_1", "currency_code": "EUR", "status": "active",
            "started_at": 1704067200, "resource_version": 1704067200000}  # fmt: skip
    return encoded({
        "id": "ev_1", "occurred_at": 1704067200, "event_type": "subscription_changed",
        "content": {"subscription": base | subscription},
    })  # fmt: skip


def test_product_catalog_1_reads_the_plan_and_its_addons() -> None:
    raw = _subscription_event({
        "plan_id": "basic", "plan_unit_price": 1000, "plan_quantity": 3,
        "billing_period": 1, "billing_period_unit": "month",
        "addons": [{"id": "extra", "quantity": 2, "unit_price": 500, "amount": 1000}],
    })  # fmt: skip

    assert mapped(raw) == [
        ("licenses", "sourceId", "chargebee-sub_1-basic", {
            "companyId": "extid-cust_1", "product": "basic", "_currency": "EUR", "mrr": 30.0,
            "fromDate": "2024-01-01", "toDate": None, "autoRenews": True,
            "renewalStatus": "ongoing", "status": "active"}, 1704067200000),
        ("licenses", "sourceId", "chargebee-sub_1-extra", {
            "companyId": "extid-cust_1", "product": "extra", "_currency": "EUR", "mrr": 10.0,
            "fromDate": "2024-01-01", "toDate": None, "autoRenews": True,
            "renewalStatus": "ongoing", "status": "active"}, 1704067200000),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("unit", "period", "amount", "mrr"),
    [("year", 1, 120000, 100.0), ("month", 3, 3000, 10.0), ("week", 1, 1200, 52.0),
     ("month", 1, 4900, 49.0)],
)  # fmt: skip
def test_an_items_amount_is_normalised_to_a_month(
    unit: str, period: int, amount: int, mrr: float
) -> None:
    item = {"item_price_id": "growth-EUR-Yearly", "item_type": "plan", "quantity": 1,
            "amount": amount, "billing_period": period, "billing_period_unit": unit}  # fmt: skip

    [(_, _, _, fields, _)] = mapped(_subscription_event({"subscription_items": [item]}))

    assert fields["mrr"] == mrr


def test_chargebees_own_mrr_after_discounts_is_shared_across_the_items() -> None:
    changed = event("subscription_changed")
    changed["content"]["subscription"]["mrr"] = 44190  # 491.00 less 10 %

    mrrs = [r[3]["mrr"] for r in mapped(encoded(changed)) if r[0] == "licenses"]

    assert mrrs == [352.8, 89.1]  # 392 and 99 less 10 %; the last item takes any rounding


def test_a_charge_item_is_no_license() -> None:
    keys = [r[2] for r in mapped(body("subscription_created")) if r[0] == "licenses"]

    assert keys == [GROWTH, SUPPORT]  # onboarding-fee-USD (item_type charge) is left out
