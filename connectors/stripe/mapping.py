"""Stripe events → Planhat changes (pure functions), for both payload generations.

From API 2025-03-31 ("basil") a subscription's current period lives on its items and an
invoice's subscription under ``parent.subscription_details``; before, on the subscription
itself (https://docs.stripe.com/changelog/basil). Companies are keyed by the Stripe
customer id as ``externalId``; licenses by subscription item id as ``sourceId``.
Event types not mapped yet return no change: the event is kept and marked done.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from connectors.change import Change, MappingError

Event = dict[str, Any]
Mapper = Callable[[Event], list[Change]]

# Months in one billing interval; MRR = amount per interval ÷ months.
MONTHS_PER = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}


def _iso_day(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def _change(event: Event, model: str, key_field: str, key: str, fields: dict[str, Any]) -> Change:
    return Change(
        model=model,
        key_field=key_field,
        key=key,
        fields={k: v for k, v in fields.items() if v is not None},
        version=int(event["created"]),
        event_id=str(event["id"]),
    )


def company_ref(customer: str) -> str:
    return f"extid-{customer}"


def customer_changes(event: Event) -> list[Change]:
    customer = event["data"]["object"]
    name = customer.get("name") or customer.get("email") or customer["id"]
    changes = [_change(event, "companies", "externalId", customer["id"], {"name": name})]
    if customer.get("email"):
        changes.append(
            _change(
                event,
                "endusers",
                "sourceId",
                f"stripe-{customer['id']}",
                {
                    "email": customer["email"],
                    "name": customer.get("name"),
                    "companyId": company_ref(customer["id"]),
                },
            )
        )
    return changes


def item_mrr(item: Event) -> float:
    """The item's monthly recurring revenue in currency units (cents ÷ 100)."""
    price = item.get("price") or item.get("plan") or {}
    recurring = price.get("recurring") or {
        "interval": price.get("interval"),
        "interval_count": price.get("interval_count"),
    }
    amount = price.get("unit_amount", price.get("amount")) or 0
    months = MONTHS_PER.get(recurring.get("interval") or "month", 1.0) * (
        recurring.get("interval_count") or 1
    )
    return round(amount * (item.get("quantity") or 1) / 100 / months, 2)


def _period_end(subscription: Event, item: Event) -> int | None:
    # basil and later: on the item; before: on the subscription.
    return item.get("current_period_end") or subscription.get("current_period_end")


def subscription_changes(event: Event) -> list[Change]:
    subscription = event["data"]["object"]
    ended = event["type"] == "customer.subscription.deleted"
    changes = []
    lost_mrr = 0.0
    products = []
    for item in subscription["items"]["data"]:
        price = item.get("price") or item.get("plan") or {}
        product = price.get("product")
        product_name = product.get("name") if isinstance(product, dict) else product
        mrr = item_mrr(item)
        end = subscription.get("ended_at") or subscription.get("canceled_at")
        fields: dict[str, Any] = {
            "companyId": company_ref(subscription["customer"]),
            "product": price.get("nickname") or product_name,
            "_currency": str(price.get("currency", "")).upper(),
            "mrr": mrr,
            "fromDate": _iso_day(subscription.get("start_date") or subscription.get("created")),
            "renewalDate": _iso_day(_period_end(subscription, item)),
            "autoRenews": not subscription.get("cancel_at_period_end") and not ended,
            "status": subscription.get("status"),
        }
        if ended:
            fields |= {"renewalStatus": "lost", "toDate": _iso_day(end)}
            lost_mrr += mrr
            products.append(fields["product"])
        changes.append(_change(event, "licenses", "sourceId", item["id"], fields))
    if ended:
        details = subscription.get("cancellation_details") or {}
        reasons = [r for r in (details.get("reason"), details.get("feedback")) if r]
        changes.append(
            _change(
                event,
                "churn",
                "sourceId",
                f"stripe-churn-{subscription['id']}",
                {
                    "companyId": company_ref(subscription["customer"]),
                    "churnDate": _iso_day(subscription.get("ended_at") or event["created"]),
                    "value": round(lost_mrr, 2),
                    "currency": str(
                        subscription["items"]["data"][0].get("price", {}).get("currency", "")
                    ).upper()
                    or None,
                    "products": [p for p in products if p],
                    "reasons": reasons or None,
                    "comment": details.get("comment"),
                },
            )
        )
    return changes


MAPPERS: dict[str, Mapper] = {
    "customer.created": customer_changes,
    "customer.updated": customer_changes,
    "customer.subscription.created": subscription_changes,
    "customer.subscription.updated": subscription_changes,
    "customer.subscription.paused": subscription_changes,
    "customer.subscription.resumed": subscription_changes,
    "customer.subscription.deleted": subscription_changes,
}


def changes(body: bytes, event_id: str) -> list[Change]:
    try:
        event = json.loads(body)
        kind = event["type"]
        mapper = MAPPERS.get(kind)
        return mapper(event) if mapper else []
    except MappingError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise MappingError(f"not a Stripe event we can read: {error!r}") from None
