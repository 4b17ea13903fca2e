"""A Stripe connection's options (company_key, product_name, trials) and the subscription
lifecycle rules (trials, pauses, scheduled and actual cancellations), on small events built
from the shared fixtures; then how the pipeline reads a stored connection's options and
buries an event whose connection has a bad one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlmodel import select

from connectors.options import OptionError
from connectors.sources import SOURCES, check_options, source_options
from connectors.stripe.mapping import changes
from state.connections import add_connection
from state.crypto import SecretBox
from state.db import session_scope
from state.inbox import store_event
from state.tables import DeadLetter, InboxEvent, OutboxItem
from tests.stripe.test_stripe import event_body
from worker.pipeline.ingest import ingest

Record = tuple[str, str, str, dict[str, Any]]
CUS = "cus_00000000000000"
SUB = "sub_000000000000000000000000"
BY_METADATA = {"company_key": "metadata.account_id"}


def event(fixture: str, kind: str | None = None, /, **fields: Any) -> dict[str, Any]:
    """The shared fixture with these fields of its object replaced (and another type)."""
    parsed: dict[str, Any] = json.loads(event_body(fixture))
    parsed["data"]["object"].update(fields)
    if kind is not None:
        parsed["type"] = kind
    return parsed


def records(body: dict[str, Any], **options: str) -> list[Record]:
    found = changes(json.dumps(body).encode(), str(body["id"]), options)
    return [(c.model, c.key_field, c.key, dict(c.fields)) for c in found]


def license_fields(body: dict[str, Any], **options: str) -> dict[str, Any]:
    [(model, _, key, fields)] = records(body, **options)
    assert (model, key) == ("licenses", "si_00000000000000")
    return fields


def with_price(**price: Any) -> dict[str, Any]:
    """customer.subscription.created with these fields of its item's price replaced."""
    body = event("customer.subscription.created")
    body["data"]["object"]["items"]["data"][0]["price"].update(price)
    return body


# --- company_key ------------------------------------------------------------------------


def test_company_key_metadata_keys_the_company_by_source_id_with_that_external_id() -> None:
    customer = event("customer.created", email="ada@acme.example", name="Acme",
                     metadata={"account_id": "acct-42"})  # fmt: skip

    assert records(customer, **BY_METADATA) == [
        ("companies", "sourceId", CUS, {"name": "Acme", "externalId": "acct-42"}),
        ("endusers", "sourceId", f"stripe-{CUS}",
         {"email": "ada@acme.example", "name": "Acme", "companyId": f"srcid-{CUS}"}),
    ]  # fmt: skip


def test_company_key_metadata_without_that_metadata_gives_no_external_id() -> None:
    assert records(event("customer.created"), **BY_METADATA) == [
        ("companies", "sourceId", CUS, {"name": CUS}),
    ]


def test_company_key_metadata_makes_licenses_and_invoices_refer_to_the_source_id() -> None:
    [license_] = records(event("customer.subscription.created"), **BY_METADATA)
    [invoice, sale] = records(event("invoice.paid"), **BY_METADATA)

    assert license_[3]["companyId"] == f"srcid-{CUS}"
    assert (invoice[0], invoice[3]["cId"]) == ("invoices", f"srcid-{CUS}")
    assert (sale[0], sale[3]["companyId"]) == ("sales", f"srcid-{CUS}")


# --- product_name -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("naming", "price", "product"),
    [
        ("nickname", {"nickname": "Pro monthly"}, "Pro monthly"),
        ("nickname", {"nickname": None}, "prod_00000000000000"),  # no nickname: the product
        ("product", {"product": {"id": "prod_00000000000000", "name": "Pro"}}, "Pro"),
        ("product", {"nickname": "Pro monthly"}, "prod_00000000000000"),  # not expanded
        ("price", {"nickname": "Pro monthly"}, "price_000000000000000000000000"),
        ("lookup_key", {"lookup_key": "pro_monthly"}, "pro_monthly"),
        ("lookup_key", {"lookup_key": None}, "prod_00000000000000"),
    ],
)
def test_product_name_chooses_what_names_the_license(
    naming: str, price: dict[str, Any], product: str
) -> None:
    assert license_fields(with_price(**price), product_name=naming)["product"] == product


def test_product_name_defaults_to_the_nickname() -> None:
    assert license_fields(with_price(nickname="Pro monthly"))["product"] == "Pro monthly"


# --- trials -----------------------------------------------------------------------------


def trialing() -> dict[str, Any]:
    return event("customer.subscription.created", status="trialing",
                 trial_start=1648320110, trial_end=1649529710)  # fmt: skip


def test_a_trial_is_a_license_with_mrr_zero_by_default() -> None:
    fields = license_fields(trialing())

    assert (fields["mrr"], fields["status"]) == (0.0, "trialing")
    assert fields["renewalStatus"] == "ongoing"
    assert license_fields(trialing(), trials="zero")["mrr"] == 0.0


def test_trials_full_gives_a_trial_its_price_mrr() -> None:
    assert license_fields(trialing(), trials="full")["mrr"] == 15.0


def test_trials_skip_gives_no_license_until_the_trial_converts() -> None:
    converted = event("customer.subscription.updated", trial_end=1648320105)

    assert records(trialing(), trials="skip") == []
    assert license_fields(converted, trials="skip")["mrr"] == 15.0


def test_a_subscription_deleted_during_its_trial_ends_its_licenses_without_churn() -> None:
    # ended_at 1648320097 is before trial_end: the trial ended unpaid.
    deleted = event("customer.subscription.deleted", trial_start=1648320096, trial_end=1649529696)

    assert records(deleted) == [
        ("licenses", "sourceId", "si_00000000000000", {
            "companyId": f"extid-{CUS}", "product": "prod_00000000000000", "_currency": "USD",
            "mrr": 0.0, "fromDate": "2022-03-26", "toDate": "2022-03-26",
            "renewalDate": "2022-04-26", "autoRenews": False, "renewalStatus": "lost",
            "status": "canceled",
        }),
    ]  # fmt: skip
    assert records(deleted, trials="skip") == []


# --- pauses -----------------------------------------------------------------------------


def test_a_paused_subscription_earns_nothing() -> None:
    paused = event("customer.subscription.updated", "customer.subscription.paused", status="paused")

    fields = license_fields(paused)

    assert (fields["mrr"], fields["status"]) == (0.0, "paused")


def test_paused_payment_collection_on_an_active_subscription_earns_nothing() -> None:
    paused = event("customer.subscription.updated", status="active",
                   pause_collection={"behavior": "void", "resumes_at": None})  # fmt: skip

    fields = license_fields(paused)

    assert (fields["mrr"], fields["status"], fields["renewalStatus"]) == (0.0, "paused", "ongoing")


def test_a_resumed_subscription_earns_its_full_mrr_again() -> None:
    resumed = event("customer.subscription.updated", "customer.subscription.resumed",
                    status="active", pause_collection=None)  # fmt: skip

    fields = license_fields(resumed)

    assert (fields["mrr"], fields["status"]) == (15.0, "active")


# --- scheduled cancellation, then the end ------------------------------------------------


def test_a_cancellation_scheduled_at_period_end_sets_the_end_date() -> None:
    scheduled = event("customer.subscription.updated", cancel_at_period_end=True, cancel_at=None)

    fields = license_fields(scheduled)

    # current_period_end 1650998505 is 2022-04-26
    assert fields["toDate"] == "2022-04-26"
    assert (fields["autoRenews"], fields["renewalStatus"]) == (False, "ongoing")
    assert fields["mrr"] == 15.0


def test_an_undone_scheduled_cancellation_clears_the_end_date() -> None:
    undone = event("customer.subscription.updated", cancel_at_period_end=False, cancel_at=None)

    fields = license_fields(undone)

    assert "toDate" in fields
    assert fields["toDate"] is None  # sent as null: Planhat clears it
    assert (fields["autoRenews"], fields["renewalStatus"]) == (True, "ongoing")


def test_the_deleted_subscription_ends_its_licenses_and_records_the_churn() -> None:
    details = {"reason": "cancellation_requested", "feedback": "too_expensive", "comment": "Dear"}
    deleted = event("customer.subscription.deleted", cancellation_details=details)

    assert records(deleted) == [
        ("licenses", "sourceId", "si_00000000000000", {
            "companyId": f"extid-{CUS}", "product": "prod_00000000000000", "_currency": "USD",
            "mrr": 15.0, "fromDate": "2022-03-26", "toDate": "2022-03-26",
            "renewalDate": "2022-04-26", "autoRenews": False, "renewalStatus": "lost",
            "status": "canceled",
        }),
        ("churn", "sourceId", f"stripe-churn-{SUB}", {
            "companyId": f"extid-{CUS}", "churnDate": "2022-03-26", "value": 15.0,
            "currency": "USD", "products": ["prod_00000000000000"],
            "reasons": ["cancellation_requested", "too_expensive"], "comment": "Dear",
        }),
    ]  # fmt: skip


def test_an_update_to_status_canceled_also_ends_it_with_the_same_churn_record() -> None:
    # ended_at 1648500000 is 2022-03-28
    canceled = event("customer.subscription.updated", status="canceled", ended_at=1648500000,
                     canceled_at=1648400000)  # fmt: skip

    [(_, _, _, license_), churn] = records(canceled)

    assert (license_["renewalStatus"], license_["toDate"], license_["autoRenews"]) == (
        "lost", "2022-03-28", False,
    )  # fmt: skip
    assert churn == ("churn", "sourceId", f"stripe-churn-{SUB}", {
        "companyId": f"extid-{CUS}", "churnDate": "2022-03-28", "value": 15.0,
        "currency": "USD", "products": ["prod_00000000000000"],
    })  # fmt: skip


def test_the_churn_value_is_the_mrr_lost() -> None:
    deleted = event("customer.subscription.deleted")
    deleted["data"]["object"]["items"]["data"][0]["quantity"] = 3

    [_, (_, _, _, churn)] = records(deleted)

    assert churn["value"] == 45.0  # 1500 cents * 3 a month


# --- checking options -------------------------------------------------------------------


def test_options_are_checked_and_defaults_filled() -> None:
    given = {"stripe.trials": "skip", "chargebee.trials": "full"}

    assert source_options(SOURCES["stripe"], given) == {
        "company_key": "id", "product_name": "nickname", "trials": "skip",
    }  # fmt: skip


def test_a_value_an_option_does_not_accept_is_refused() -> None:
    with pytest.raises(OptionError, match=r"stripe\.company_key='name' is not valid"):
        source_options(SOURCES["stripe"], {"stripe.company_key": "name"})


def test_an_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(OptionError, match="stripe has no option 'colour'"):
        source_options(SOURCES["stripe"], {"stripe.colour": "x"})


def test_an_option_of_an_unknown_source_is_refused() -> None:
    with pytest.raises(OptionError, match="no source named 'nosuch'"):
        check_options({"nosuch.x": "y"})


# --- the pipeline reads a connection's options -------------------------------------------


def customer_with_account() -> bytes:
    return json.dumps(event("customer.created", metadata={"account_id": "acct-42"})).encode()


def connect(engine: Engine, options: dict[str, str]) -> None:
    add_connection(
        engine,
        SecretBox(Fernet.generate_key().decode()),
        name="acme",
        planhat_base_url="http://planhat.invalid",
        planhat_token="token-acme",
        secrets={"stripe": "whsec_acme"},
        options=options,
    )


def ingest_one(engine: Engine, connection: str, **kwargs: Any) -> list[OutboxItem]:
    with session_scope(engine) as session:
        inbox_id = store_event(session, connection=connection, source="stripe",
                               event_id="evt_options", body=customer_with_account())  # fmt: skip
    assert inbox_id is not None
    with session_scope(engine) as session:
        ingest(session, inbox_id, **kwargs)
    with session_scope(engine) as session:
        return list(session.exec(select(OutboxItem)))


def test_the_pipeline_maps_with_the_stored_connections_options(sqlite_engine: Engine) -> None:
    connect(sqlite_engine, {"stripe.company_key": "metadata.account_id"})

    [company] = ingest_one(sqlite_engine, "acme")

    assert (company.connection, company.model, company.key_field, company.key_value) == (
        "acme", "companies", "sourceId", CUS,
    )  # fmt: skip
    assert company.fields == {"name": CUS, "externalId": "acct-42"}


def test_the_default_connection_without_a_row_takes_the_default_options(
    sqlite_engine: Engine,
) -> None:
    [company] = ingest_one(
        sqlite_engine, "default", default_options={"stripe.company_key": "metadata.account_id"}
    )

    assert (company.connection, company.key_field) == ("default", "sourceId")
    assert company.key_value == CUS
    assert company.fields == {"name": CUS, "externalId": "acct-42"}


def test_without_options_the_company_is_keyed_by_external_id(sqlite_engine: Engine) -> None:
    [company] = ingest_one(sqlite_engine, "default")

    assert (company.key_field, company.key_value, company.fields) == (
        "externalId", CUS, {"name": CUS},
    )  # fmt: skip


def test_a_bad_stored_option_buries_the_event(sqlite_engine: Engine) -> None:
    connect(sqlite_engine, {"stripe.trials": "sometimes"})

    assert ingest_one(sqlite_engine, "acme") == []

    with session_scope(sqlite_engine) as session:
        [dead] = session.exec(select(DeadLetter)).all()
        [stored] = session.exec(select(InboxEvent)).all()
    assert (dead.connection, dead.event_id, dead.inbox_id) == ("acme", "evt_options", stored.id)
    assert "stripe.trials='sometimes' is not valid" in dead.reason
    assert dead.reason.startswith("mapping failed: ")
    assert (stored.status, stored.error) == ("failed", dead.reason.removeprefix("mapping failed: "))


# --- an item taken off the subscription -----------------------------------------------


def test_an_item_taken_off_the_subscription_ends_its_license_without_churn() -> None:
    body = event("customer.subscription.updated")
    [kept] = body["data"]["object"]["items"]["data"]
    gone = json.loads(json.dumps(kept))
    gone["id"], gone["price"]["unit_amount"] = "si_gone", 500
    body["data"]["previous_attributes"] = {"items": {"object": "list", "data": [kept, gone]}}

    found = records(body)

    assert [(model, key) for model, _, key, _ in found] == [
        ("licenses", "si_00000000000000"),
        ("licenses", "si_gone"),
    ]
    assert found[0][3]["renewalStatus"] == "ongoing"
    assert found[1][3] == {
        "companyId": f"extid-{CUS}",
        "product": "prod_00000000000000",
        "_currency": "USD",
        "mrr": 5.0,
        "fromDate": "2022-03-26",
        "toDate": "2022-03-26",
        "renewalDate": "2022-04-26",
        "autoRenews": False,
        "renewalStatus": "lost",
        "status": "removed",
    }
