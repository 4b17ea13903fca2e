"""Revenue is right or not sent: a Stripe payload that would state a wrong MRR or currency
is a dead letter that says why (``RecordRejected``), never a record with a guessed value.

Every case starts from a shared fixture (tests/fixtures/stripe): a subscription of one
$15.00/month item (price unit_amount 1500, quantity 1) and a paid $20.00 invoice.
"""

from __future__ import annotations

import json
from typing import Any

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
