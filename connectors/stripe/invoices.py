"""Stripe invoices → Planhat invoices; the one-off lines of a paid invoice → sales."""

from __future__ import annotations

from connectors.change import Change
from connectors.stripe.common import Event, StripeOptions, change, iso_day


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


def invoice_changes(event: Event, options: StripeOptions) -> list[Change]:
    """An invoice as a Planhat invoice (``extId``/``cId``, amounts in currency units); once
    paid, each one-off line as a sale. Planhat documents only ``extId``, ``cId``,
    ``currency`` and day-number dates for invoices: the other field names follow what
    Planhat's own invoice screen shows (number, status, amounts, line items)."""
    invoice = event["data"]["object"]
    reference = options.company(invoice["customer"])
    currency = str(invoice.get("currency", "")).upper()
    transitions = invoice.get("status_transitions") or {}
    status = invoice.get("status")
    if event["type"] == "invoice.payment_failed":
        status = "payment_failed"
    lines = invoice.get("lines", {}).get("data", [])
    changes = [
        change(
            event,
            "invoices",
            "extId",
            invoice["id"],
            {
                "cId": reference,
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
                change(
                    event,
                    "sales",
                    "sourceId",
                    f"stripe-sale-{line['id']}",
                    {
                        "companyId": reference,
                        "_currency": currency,
                        "salesDate": iso_day(paid_at),
                        "value": line["amount"] / 100,
                        "product": product if isinstance(product, str) else None,
                        "description": line.get("description"),
                    },
                )
            )
    return changes
