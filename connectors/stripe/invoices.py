"""Stripe invoices → Planhat invoices; the one-off lines of a paid invoice → sales."""

from __future__ import annotations

from connectors.billing import (
    DAY,
    OVERDUE,
    PAID,
    PENDING,
    BillingOptions,
    Invoice,
    Line,
    invoice_records,
    voided,
)
from connectors.change import Change, RecordRejected
from connectors.stripe.common import Event, changes_of


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
        sale_key=f"stripe-sale-{line['id']}" if _one_off(line) else None,
        product=product if isinstance(product, str) else None,
    )


def planhat_status(event: Event) -> str:
    """A Stripe invoice's status (https://docs.stripe.com/api/invoices/object: draft, open,
    paid, uncollectible, void) as Planhat's (pending, paid, overdue), as of the event:

    - ``paid`` → paid;
    - ``draft`` (not issued yet) → pending, Planhat's default;
    - ``open`` → overdue once it is past due, else pending. Past due: a ``due_date`` (an
      invoice sent to be paid) on an earlier day than the event's, as Planhat counts it
      (due on day D, overdue from D + 1); with no ``due_date`` (charged automatically, so
      due when issued), a payment attempt that failed (``attempt_count`` > 0, or the
      event is ``invoice.payment_failed``);
    - ``uncollectible`` (Stripe gave up collecting; nothing was paid) → overdue;
    - ``void`` → no Planhat status fits: a dead letter (``billing.voided``);
    - any other → a dead letter, rather than a status guessed.
    """
    invoice = event["data"]["object"]
    status = invoice.get("status")
    if status == "paid":
        return PAID
    if status == "draft":
        return PENDING
    if status == "uncollectible":
        return OVERDUE
    if status == "open":
        due = invoice.get("due_date")
        if due is not None:
            past_due = int(due) // DAY < int(event["created"]) // DAY
        else:
            attempts = invoice.get("attempt_count") or 0
            past_due = event["type"] == "invoice.payment_failed" or attempts > 0
        return OVERDUE if past_due else PENDING
    if status == "void":
        raise voided(f"Stripe invoice {invoice['id']}")
    raise RecordRejected(f"Stripe invoice {invoice['id']} has a status we do not know: {status!r}")


def invoice_changes(event: Event, options: BillingOptions) -> list[Change]:
    invoice = event["data"]["object"]
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
        status=planhat_status(event),
        total_cents=invoice.get("total") or 0,
        date=invoice.get("created"),
        due_date=invoice.get("due_date"),
        paid_at=transitions.get("paid_at"),
        lines=[_line(line) for line in invoice.get("lines", {}).get("data", [])],
    )
    return changes_of(event, invoice_records(read, fallback_paid_at=int(event["created"])))
