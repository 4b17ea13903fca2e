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


def _days(seconds: int | None) -> int | None:
    """Planhat invoice dates are whole days since 1970-01-01 (planhat-api.md)."""
    return None if seconds is None else int(seconds) // 86_400


def _invoice_subscription(invoice: Event) -> str | None:
    # 2025-03-31 ("basil") and later: under parent.subscription_details; before: on top.
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return details.get("subscription") or invoice.get("subscription")


def _one_off(line: Event) -> bool:
    """A line that is not part of a subscription (an invoice item, a one-time price)."""
    price = line.get("price") or {}
    parent = line.get("parent") or {}
    if parent.get("type") == "subscription_item_details" or line.get("subscription_item"):
        return False
    return line.get("type") == "invoiceitem" or price.get("type") == "one_time"


def invoice_changes(event: Event) -> list[Change]:
    """An invoice as a Planhat invoice (``extId``/``cId``, amounts in currency units); once
    paid, each one-off line as a sale. Planhat documents only ``extId``, ``cId``,
    ``currency`` and day-number dates for invoices: the other field names follow what
    Planhat's own invoice screen shows (number, status, amounts, line items)."""
    invoice = event["data"]["object"]
    customer = invoice["customer"]
    currency = str(invoice.get("currency", "")).upper()
    transitions = invoice.get("status_transitions") or {}
    status = invoice.get("status")
    if event["type"] == "invoice.payment_failed":
        status = "payment_failed"
    lines = invoice.get("lines", {}).get("data", [])
    changes = [
        _change(
            event,
            "invoices",
            "extId",
            invoice["id"],
            {
                "cId": company_ref(customer),
                "currency": currency,
                "number": invoice.get("number"),
                "status": status,
                "amountTotal": (invoice.get("total") or 0) / 100,
                "amountDue": (invoice.get("amount_due") or 0) / 100,
                "amountPaid": (invoice.get("amount_paid") or 0) / 100,
                "date": _days(invoice.get("created")),
                "dueDate": _days(invoice.get("due_date")),
                "paidDate": _days(transitions.get("paid_at")),
                "subscription": _invoice_subscription(invoice),
                "lineItems": [
                    {
                        "description": line.get("description"),
                        "amount": (line.get("amount") or 0) / 100,
                        "quantity": line.get("quantity"),
                    }
                    for line in lines
                ],
            },
        )
    ]
    if status == "paid":
        paid_at = transitions.get("paid_at") or event["created"]
        for line in lines:
            if not _one_off(line) or not line.get("amount"):
                continue
            product = (line.get("price") or {}).get("product")
            changes.append(
                _change(
                    event,
                    "sales",
                    "sourceId",
                    f"stripe-sale-{line['id']}",
                    {
                        "companyId": company_ref(customer),
                        "_currency": currency,
                        "salesDate": _iso_day(paid_at),
                        "value": line["amount"] / 100,
                        "product": product if isinstance(product, str) else None,
                        "description": line.get("description"),
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
    **dict.fromkeys(
        [
            "invoice.created",
            "invoice.updated",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded",
            "invoice.payment_failed",
            "invoice.voided",
            "invoice.marked_uncollectible",
        ],
        invoice_changes,
    ),
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
