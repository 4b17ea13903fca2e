"""Revenue is right or not sent: a Stripe payload that would state a wrong MRR or currency
is a dead letter that says why (``RecordRejected``), never a record with a guessed value.

Every case starts from a shared fixture (tests/fixtures/stripe): a subscription of one
$15.00/month item (price unit_amount 1500, quantity 1) and a paid $20.00 invoice.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.change import RecordRejected
from connectors.stripe.mapping import changes
from tests.stripe.test_stripe import event_body, mapped

SUBSCRIPTION = "sub_000000000000000000000000"
ITEM = "si_00000000000000"
PRICE = "price_000000000000000000000000"


def subscription_event(**item: Any) -> dict[str, Any]:
    """customer.subscription.created with its one item's fields replaced by ``item``."""
    event: dict[str, Any] = json.loads(event_body("customer.subscription.created"))
    event["data"]["object"]["items"]["data"][0] |= item
    return event


def price_with(**fields: Any) -> dict[str, Any]:
    price: dict[str, Any] = subscription_event()["data"]["object"]["items"]["data"][0]["price"]
    return price | fields


def license_mrr(event: dict[str, Any]) -> float:
    [(model, _, _, fields, _)] = mapped(json.dumps(event).encode())
    assert model == "licenses"
    mrr: float = fields["mrr"]
    return mrr


def rejected(event: dict[str, Any]) -> str:
    with pytest.raises(RecordRejected) as error:
        changes(json.dumps(event).encode(), "e")
    return str(error.value)


# --- quantity ---------------------------------------------------------------------------


def test_an_item_of_quantity_zero_has_mrr_zero() -> None:
    assert license_mrr(subscription_event(quantity=0)) == 0.0


def test_quantity_multiplies_the_unit_amount() -> None:
    assert license_mrr(subscription_event(quantity=3)) == 45.0


def test_a_metered_item_without_a_quantity_counts_one_unit_as_before() -> None:
    # Stripe sends quantity null for a metered price: the usage is billed afterwards.
    recurring = price_with()["recurring"] | {"usage_type": "metered"}
    event = subscription_event(quantity=None, price=price_with(recurring=recurring))

    assert license_mrr(event) == 15.0


# --- price ------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [None, "absent"])
def test_an_item_with_no_price_is_a_dead_letter_naming_the_item(price: str | None) -> None:
    event = subscription_event(price=None, plan=None)
    if price == "absent":
        item = event["data"]["object"]["items"]["data"][0]
        del item["price"], item["plan"]

    reason = rejected(event)

    assert reason.startswith(f"Stripe subscription {SUBSCRIPTION}: ")
    assert f"item {ITEM} has no price" in reason


def test_a_price_without_a_unit_amount_is_a_dead_letter_naming_the_price() -> None:
    # A tiered price has no unit_amount (https://docs.stripe.com/api/prices/object): its
    # amount depends on tiers the event does not carry.
    tiered = price_with(billing_scheme="tiered", unit_amount=None, unit_amount_decimal=None)

    reason = rejected(subscription_event(price=tiered))

    assert f"price {PRICE} of item {ITEM} has no unit amount" in reason
    assert "tiered" in reason


def test_a_unit_amount_given_only_in_decimal_gives_the_mrr() -> None:
    decimal = price_with(unit_amount=None, unit_amount_decimal="1234.5")

    assert license_mrr(subscription_event(price=decimal, quantity=10)) == 123.45


@pytest.mark.parametrize("interval", [None, "fortnight"])
def test_a_price_with_no_billing_interval_we_know_is_a_dead_letter(interval: str | None) -> None:
    recurring = price_with()["recurring"] | {"interval": interval}

    reason = rejected(subscription_event(price=price_with(recurring=recurring)))

    assert f"price {PRICE} of item {ITEM} has no billing period we know" in reason


# --- currency ---------------------------------------------------------------------------


@pytest.mark.parametrize("currency", [None, "", "absent"])
def test_a_subscription_with_no_currency_is_a_dead_letter(currency: str | None) -> None:
    price = price_with(currency=currency)
    if currency == "absent":
        del price["currency"]

    reason = rejected(subscription_event(price=price))

    assert reason == (
        f"Stripe subscription {SUBSCRIPTION}: price {PRICE} of item {ITEM} has no currency"
    )


@pytest.mark.parametrize("currency", [None, "absent"])
def test_an_invoice_with_no_currency_is_a_dead_letter(currency: str | None) -> None:
    event = json.loads(event_body("invoice.paid"))
    event["data"]["object"]["currency"] = currency
    if currency == "absent":
        del event["data"]["object"]["currency"]

    assert rejected(event) == "Stripe invoice in_000000000000000000000000 has no currency"
