"""Stripe invoices → Planhat invoices; the one-off lines of a paid invoice → sales."""

from __future__ import annotations

from connectors.billing import BillingOptions, Invoice, Line, invoice_records
from connectors.change import Change, RecordRejected
from connectors.stripe.common import Event, changes_of


def _invoice_subscription(invoice: Event) -> str | None:
    # 2025-03-31 ("basil") and later: under parent.subscription_details; before: on top.
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return details.get("subscription") or invoice.get("subscription")


def _one_off(line: Event) -> bool:
    """A line that is not part of a subscription (an invoice item, a one-time price), and
    not a proration. Basil and later say so in ``parent``; before, in ``type``/``price``."""
    parent = line.get("parent") or {}
    if parent.get("type") == "subscription_item_details" or line.get("subscription_item"):
        return False
    item_details = parent.get("invoice_item_details") or {}
    if line.get("proration") or item_details.get("proration"):
        return False
    if parent.get("type") == "invoice_item_details":
        return True
    return line.get("type") == "invoiceitem" or (line.get("price") or {}).get("type") == "one_time"


def _line(line: Event) -> Line:
    price_details = (line.get("pricing") or {}).get("price_details") or {}
    product = price_details.get("product") or (line.get("price") or {}).get("product")
    return Line(
        description=line.get("description"),
        amount_cents=line.get("amount") or 0,
        quantity=line.get("quantity"),
        sale_key=f"stripe-sale-{line['id']}" if _one_off(line) else None,
        product=product if isinstance(product, str) else None,
    )


def invoice_changes(event: Event, options: BillingOptions) -> list[Change]:
    invoice = event["data"]["object"]
    status = invoice.get("status")
    if event["type"] == "invoice.payment_failed":
        status = "payment_failed"
    transitions = invoice.get("status_transitions") or {}
    # Always sent (https://docs.stripe.com/api/invoices/object): amounts without it mean
    # nothing, so the invoice and its sales wait as a dead letter.
    currency = invoice.get("currency")
    if not isinstance(currency, str) or not currency:
        raise RecordRejected(f"Stripe invoice {invoice['id']} has no currency")
    read = Invoice(
        key=invoice["id"],
        company=options.company(invoice["customer"]),
        currency=currency.upper(),
        number=invoice.get("number"),
        status=status,
        total_cents=invoice.get("total") or 0,
        due_cents=invoice.get("amount_due") or 0,
        paid_cents=invoice.get("amount_paid") or 0,
        date=invoice.get("created"),
        due_date=invoice.get("due_date"),
        paid_at=transitions.get("paid_at"),
        subscription=_invoice_subscription(invoice),
        lines=[_line(line) for line in invoice.get("lines", {}).get("data", [])],
    )
    return changes_of(event, invoice_records(read, fallback_paid_at=int(event["created"])))
