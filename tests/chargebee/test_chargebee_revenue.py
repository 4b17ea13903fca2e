"""Revenue is right or not sent (Chargebee): a payload that would state a wrong MRR or
currency is a dead letter that says why (``RecordRejected``), never a record with a
guessed value.

Every case starts from a fixture (tests/fixtures/chargebee). In ``subscription_changed``
the subscription is active, in USD, billed monthly: plan growth-USD-Monthly 4900 x 8 =
39200 and addon priority-support-USD-Monthly 9900, Chargebee's own ``mrr`` 49100.
Chargebee leaves out an attribute it has no value for, so "missing" means deleted here.
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.change import RecordRejected
from connectors.chargebee.mapping import changes
from tests.chargebee.test_chargebee import GROWTH, SUBSCRIPTION, SUPPORT, encoded, event, mapped

SUBSCRIPTION_EVENTS = [
    "subscription_created",  # in trial
    "subscription_changed",
    "subscription_paused",
    "subscription_cancelled",
    "payment_succeeded",  # with its invoice and customer
]


def changed(*missing: str, mrr: int | None = None, **growth: Any) -> dict[str, Any]:
    """subscription_changed with the growth plan's ``missing`` attributes left out and
    ``growth`` set; Chargebee's own mrr set to ``mrr``, or left out when None."""
    changed_ = event("subscription_changed")
    subscription = changed_["content"]["subscription"]
    item = subscription["subscription_items"][0]
    for key in missing:
        del item[key]
    item |= growth
    del subscription["mrr"]
    if mrr is not None:
        subscription["mrr"] = mrr
    return changed_


def license_mrrs(event_: dict[str, Any]) -> list[tuple[str, float]]:
    return [(key, fields["mrr"]) for model, _, key, fields, _ in mapped(encoded(event_))
            if model == "licenses"]  # fmt: skip


def rejected(event_: dict[str, Any]) -> str:
    with pytest.raises(RecordRejected) as error:
        changes(encoded(event_), "e")
    return str(error.value)


# --- quantity and amount ----------------------------------------------------------------


def test_an_item_of_quantity_zero_has_mrr_zero() -> None:
    # No amount: it is unit price x quantity; Chargebee's own mrr is then the addon's.
    event_ = changed("amount", quantity=0, mrr=9900)

    assert license_mrrs(event_) == [(GROWTH, 0.0), (SUPPORT, 99.0)]


def test_an_item_without_a_quantity_counts_its_unit_price_once() -> None:
    assert license_mrrs(changed("amount", "quantity")) == [(GROWTH, 49.0), (SUPPORT, 99.0)]


def test_product_catalog_1_plan_quantity_zero_has_mrr_zero() -> None:
    event_ = changed()
    subscription = event_["content"]["subscription"]
    del subscription["subscription_items"]
    subscription |= {"plan_id": "growth", "plan_unit_price": 4900, "plan_quantity": 0}

    assert license_mrrs(event_) == [(f"chargebee-{SUBSCRIPTION}-growth", 0.0)]


def test_an_item_with_no_amount_and_no_unit_price_is_a_dead_letter() -> None:
    reason = rejected(changed("amount", "unit_price", mrr=49100))

    assert reason == (
        f"Chargebee subscription {SUBSCRIPTION}: item price growth-USD-Monthly has no amount "
        "or unit price, so its MRR cannot be computed"
    )


# --- billing period ---------------------------------------------------------------------


@pytest.mark.parametrize("unit", [None, "fortnight"])
def test_an_item_with_no_billing_period_we_know_is_a_dead_letter(unit: str | None) -> None:
    event_ = changed("billing_period_unit", mrr=49100)
    del event_["content"]["subscription"]["billing_period_unit"]  # no fallback either
    if unit:
        event_["content"]["subscription"]["subscription_items"][0]["billing_period_unit"] = unit

    reason = rejected(event_)

    assert reason.startswith(
        f"Chargebee subscription {SUBSCRIPTION}: item price growth-USD-Monthly has no "
        f"billing period we know (unit {unit!r})"
    )


# --- currency ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SUBSCRIPTION_EVENTS)
def test_a_subscription_with_no_currency_is_a_dead_letter(name: str) -> None:
    event_ = event(name)
    del event_["content"]["subscription"]["currency_code"]

    assert rejected(event_) == f"Chargebee subscription {SUBSCRIPTION} has no currency_code"


def test_an_invoice_with_no_currency_is_a_dead_letter() -> None:
    event_ = event("invoice_generated")
    del event_["content"]["invoice"]["currency_code"]

    assert rejected(event_) == "Chargebee invoice 1001 has no currency_code"
