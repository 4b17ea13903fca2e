"""Stripe customers → companies and endusers; subscriptions → licenses and churn.

Companies are keyed by the Stripe customer id (the ``company_key`` option), licenses by
subscription item id as ``sourceId``. From API 2025-03-31 ("basil") a subscription's
current period lives on its items; before, on the subscription itself
(https://docs.stripe.com/changelog/basil).
"""

from __future__ import annotations

from typing import Any

from connectors.change import Change
from connectors.options import company_reference, dig
from connectors.stripe.common import Event, StripeOptions, change, iso_day

# Months in one billing interval; MRR = amount per interval ÷ months.
MONTHS_PER = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}


def customer_changes(event: Event, options: StripeOptions) -> list[Change]:
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
    price: Event = item.get("price") or item.get("plan") or {}
    return price


def item_mrr(item: Event) -> float:
    """The item's monthly recurring revenue in currency units (cents ÷ 100)."""
    price = _price(item)
    recurring = price.get("recurring") or {
        "interval": price.get("interval"),
        "interval_count": price.get("interval_count"),
    }
    amount = price.get("unit_amount", price.get("amount")) or 0
    months = MONTHS_PER.get(recurring.get("interval") or "month", 1.0) * (
        recurring.get("interval_count") or 1
    )
    return round(amount * (item.get("quantity") or 1) / 100 / months, 2)


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


def _period_end(subscription: Event, item: Event) -> int | None:
    # basil and later: on the item; before: on the subscription.
    return item.get("current_period_end") or subscription.get("current_period_end")


def _ended(event: Event, subscription: Event) -> bool:
    # A cancellation scheduled earlier (cancel_at_period_end, cancel_at) ends with
    # customer.subscription.deleted; a poll may see the ended subscription first.
    return event["type"] == "customer.subscription.deleted" or subscription.get("status") in (
        "canceled",
        "incomplete_expired",
    )


def _ended_in_trial(subscription: Event) -> bool:
    trial_end, ended_at = subscription.get("trial_end"), subscription.get("ended_at")
    return bool(trial_end and ended_at and ended_at <= trial_end)


def subscription_changes(event: Event, options: StripeOptions) -> list[Change]:
    """One license per item; when the subscription ends, the licenses end ("lost") and
    one churn record says what was lost. Paused (``status: paused``, or payment
    collection paused: "your services for free", docs.stripe.com/billing/subscriptions/
    pause-payment) and trialing subscriptions earn nothing this month: MRR 0, unless
    the ``trials`` option says otherwise. A trial that ends unpaid is no churn."""
    subscription = event["data"]["object"]
    ended = _ended(event, subscription)
    in_trial = subscription.get("status") == "trialing" or (ended and _ended_in_trial(subscription))
    if in_trial and options.trials == "skip":
        return []
    paused = subscription.get("status") == "paused" or bool(subscription.get("pause_collection"))
    earns = not paused and (not in_trial or options.trials == "full")
    scheduled_end = subscription.get("cancel_at")
    end = subscription.get("ended_at") or subscription.get("canceled_at") or event["created"]
    reference = options.company(subscription["customer"])
    changes = []
    lost_mrr = 0.0
    products = []
    for item in subscription["items"]["data"]:
        mrr = item_mrr(item) if earns else 0.0
        period_end = _period_end(subscription, item)
        if ended:
            to_date = iso_day(end)
        elif scheduled_end or subscription.get("cancel_at_period_end"):
            to_date = iso_day(scheduled_end or period_end)
        else:
            to_date = None
        fields: dict[str, Any] = {
            "companyId": reference,
            "product": product_name(item, options.product_name),
            "_currency": str(_price(item).get("currency", "")).upper(),
            "mrr": mrr,
            "fromDate": iso_day(subscription.get("start_date") or subscription.get("created")),
            "toDate": to_date,
            "renewalDate": iso_day(period_end),
            "autoRenews": to_date is None,
            "renewalStatus": "lost" if ended else "ongoing",
            "status": "paused" if paused and not ended else subscription.get("status"),
        }
        lost_mrr += mrr
        products.append(fields["product"])
        changes.append(change(event, "licenses", "sourceId", item["id"], fields))
    if ended and not in_trial:
        changes.append(_churn(event, subscription, reference, lost_mrr, products))
    return changes


def _churn(
    event: Event, subscription: Event, reference: str, lost_mrr: float, products: list[Any]
) -> Change:
    details = subscription.get("cancellation_details") or {}
    items = subscription["items"]["data"]
    currency = str(_price(items[0]).get("currency", "")).upper() if items else ""
    ended_at = subscription.get("ended_at") or event["created"]
    fields = {
        "companyId": reference,
        "churnDate": iso_day(ended_at),
        "value": round(lost_mrr, 2),
        "currency": currency or None,
        "products": [p for p in products if p],
        "reasons": [r for r in (details.get("reason"), details.get("feedback")) if r] or None,
        "comment": details.get("comment"),
    }
    return change(event, "churn", "sourceId", f"stripe-churn-{subscription['id']}", fields)
