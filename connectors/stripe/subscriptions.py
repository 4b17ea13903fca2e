"""Stripe customers → companies and endusers; subscriptions → licenses and churn.

Companies are keyed by the Stripe customer id (the ``company_key`` option), licenses by
subscription item id as ``sourceId``. From API 2025-03-31 ("basil") a subscription's
current period lives on its items; before, on the subscription itself
(https://docs.stripe.com/changelog/basil).
"""

from __future__ import annotations

from connectors.billing import (
    BillingOptions,
    Item,
    Subscription,
    company_reference,
    dig,
    monthly,
    subscription_records,
)
from connectors.change import Change, RecordRejected
from connectors.stripe.common import Event, change, changes_of


def customer_changes(event: Event, options: BillingOptions) -> list[Change]:
    customer = event["data"]["object"]
    name = customer.get("name") or customer.get("email") or customer["id"]
    key_field, reference = company_reference(options.company_key, customer["id"])
    if key_field == "externalId":
        company = change(event, "companies", "externalId", customer["id"], {"name": name})
    else:
        external_id = dig(customer, options.company_key)  # absent: keyed by sourceId only
        fields = {"name": name, "externalId": external_id}
        company = change(event, "companies", "sourceId", customer["id"], fields)
    changes = [company]
    if customer.get("email"):
        fields = {"email": customer["email"], "name": customer.get("name"), "companyId": reference}
        changes.append(change(event, "endusers", "sourceId", f"stripe-{customer['id']}", fields))
    return changes


def _price(item: Event) -> Event:
    # Every subscription item has a price (older payloads: a plan, still sent beside it;
    # https://docs.stripe.com/api/subscription_items/object). Without one its license
    # would have no product and no MRR.
    price = item.get("price") or item.get("plan")
    if not isinstance(price, dict):
        raise RecordRejected(f"item {item.get('id')} has no price")
    return price


def _unit_amount(item: Event, price: Event) -> float:
    """Cents per unit and interval: ``unit_amount`` (a plan's ``amount``), else the decimal
    string a sub-cent price has instead. A tiered price has neither
    (https://docs.stripe.com/api/prices/object): its amount comes from tiers the event
    does not carry, so there is no MRR to state."""
    for key in ("unit_amount", "amount", "unit_amount_decimal", "amount_decimal"):
        if price.get(key) is not None:
            return float(price[key])
    scheme = price.get("billing_scheme") or "per_unit"
    raise RecordRejected(
        f"price {price.get('id')} of item {item.get('id')} has no unit amount "
        f"(billing_scheme {scheme}), so its MRR cannot be read from the event"
    )


def _currency(items: list[Event]) -> str:
    """The first item's price's currency (a subscription's prices share one). Stripe always
    sends it (https://docs.stripe.com/api/prices/object): MRR without one means nothing."""
    if not items:
        return ""
    price = _price(items[0])
    currency = price.get("currency")
    if not isinstance(currency, str) or not currency:
        raise RecordRejected(
            f"price {price.get('id')} of item {items[0].get('id')} has no currency"
        )
    return currency.upper()


def _quantity(item: Event) -> int:
    # quantity is null for a metered price, which has no fixed quantity (usage is billed
    # afterwards; https://docs.stripe.com/api/subscription_items/object): counted as one
    # unit, as before. Any number given, 0 included, is the quantity.
    quantity = item.get("quantity")
    return 1 if quantity is None else int(quantity)


def item_mrr(item: Event) -> float:
    """The item's monthly recurring revenue in currency units."""
    price = _price(item)
    recurring = price.get("recurring") or {
        "interval": price.get("interval"),
        "interval_count": price.get("interval_count"),
    }
    amount = _unit_amount(item, price) * _quantity(item)
    what = f"price {price.get('id')} of item {item.get('id')}"
    return monthly(amount, recurring.get("interval"), recurring.get("interval_count"), what=what)


def product_name(item: Event, naming: str) -> str | None:
    price = _price(item)
    product = price.get("product")
    product_label = product.get("name") if isinstance(product, dict) else product
    if naming == "price":
        return price.get("id") or product_label
    if naming == "product":
        return product_label
    if naming == "lookup_key":
        return price.get("lookup_key") or product_label
    return price.get("nickname") or product_label


def _ended(event: Event, subscription: Event) -> bool:
    # A cancellation scheduled earlier (cancel_at_period_end, cancel_at) ends with
    # customer.subscription.deleted; a poll may see the ended subscription first.
    return event["type"] == "customer.subscription.deleted" or subscription.get("status") in (
        "canceled",
        "incomplete_expired",
    )


def _item(item: Event, options: BillingOptions, period_end: int | None) -> Item:
    return Item(
        key=item["id"],
        product=product_name(item, options.product_name),
        mrr=item_mrr(item),
        period_end=item.get("current_period_end") or period_end,
    )


def read_subscription(event: Event, options: BillingOptions) -> Subscription:
    subscription = event["data"]["object"]
    items = subscription["items"]["data"]
    ended = _ended(event, subscription)
    trial_end, ended_at = subscription.get("trial_end"), subscription.get("ended_at")
    details = subscription.get("cancellation_details") or {}
    period_end = subscription.get("current_period_end")  # before basil; after: per item
    scheduled = subscription.get("cancel_at")
    if not scheduled and subscription.get("cancel_at_period_end"):
        scheduled = (items[0].get("current_period_end") if items else None) or period_end
    # An update lists the items as they were in previous_attributes: those gone now ended.
    before = ((event["data"].get("previous_attributes") or {}).get("items") or {}).get("data")
    now_ids = {item["id"] for item in items}
    removed = [item for item in before or [] if item.get("id") not in now_ids]
    return Subscription(
        churn_key=f"stripe-churn-{subscription['id']}",
        company=options.company(subscription["customer"]),
        currency=_currency(items),
        status=subscription.get("status"),
        # "start" in payloads older than 2019-10-17; then start_date.
        started=subscription.get("start_date")
        or subscription.get("start")
        or subscription.get("created"),
        items=[_item(item, options, period_end) for item in items],
        ended=ended,
        ended_at=ended_at or subscription.get("canceled_at") or int(event["created"]),
        in_trial=subscription.get("status") == "trialing"
        or bool(ended and trial_end and ended_at and ended_at <= trial_end),
        # status "paused" (no invoices), or payment collection paused: "your services
        # for free" (docs.stripe.com/billing/subscriptions/pause-payment): no MRR earned.
        paused=subscription.get("status") == "paused" or bool(subscription.get("pause_collection")),
        scheduled_end=scheduled or None,
        reasons=[r for r in (details.get("reason"), details.get("feedback")) if r],
        comment=details.get("comment"),
        removed=[_item(item, options, period_end) for item in removed],
        changed_at=int(event["created"]),
    )


def subscription_changes(event: Event, options: BillingOptions) -> list[Change]:
    """One license per item; when the subscription ends, the licenses end and one churn
    record says what was lost (the rules: connectors/billing.py)."""
    try:
        read = read_subscription(event, options)
    except RecordRejected as error:
        # The whole event, not just the one license: the others sent alone would show the
        # subscription's MRR (and later the churn) too low, with no error anywhere.
        subscription_id = event["data"]["object"]["id"]
        raise RecordRejected(f"Stripe subscription {subscription_id}: {error}") from None
    return changes_of(event, subscription_records(read, options.trials))
