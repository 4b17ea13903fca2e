"""Chargebee events → Planhat changes (pure functions).

An event's ``content`` carries the resources as they are now: ``customer`` → a company
and its enduser, ``subscription`` → licenses (and churn), ``invoice`` → an invoice (and
sales); the rules are shared with Stripe (connectors/billing.py). Each change's version
is its resource's ``resource_version`` (milliseconds; the event's ``occurred_at`` when
missing), so a redelivered or late event never overwrites a newer state.
Reads Product Catalog 2.0 (``subscription_items``) and 1.0 (``plan_id``, ``addons``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.billing import (
    OVERDUE,
    PAID,
    PENDING,
    TRIALS,
    BillingOptions,
    Invoice,
    Item,
    Line,
    Record,
    Subscription,
    company_reference,
    dig,
    invoice_records,
    monthly,
    present,
    subscription_records,
    voided,
)
from connectors.change import Change, MappingError, RecordRejected
from connectors.options import Option
from connectors.webhooks import load_json

Resource = dict[str, Any]

OPTIONS = (
    Option(
        "company_key",
        "id",
        r"id|cf_[A-Za-z0-9_]+|meta_data\.[A-Za-z0-9_.-]+",
        "'id' (the customer id is the company's externalId), a custom field 'cf_<name>' or "
        "'meta_data.<key>' (that value is; the customer id becomes its sourceId)",
    ),
    Option(
        "product_name",
        "item_price",
        r"item_price|item",
        "the license's product: 'item_price' (the item price id, growth-USD-Monthly) or "
        "'item' (without Chargebee's -<CURRENCY>-<Period> suffix: growth)",
    ),
    TRIALS,
)

# The event types mapped; any other is kept and marked "ignored".
MAPPED = frozenset(
    [f"subscription_{kind}" for kind in (
        "created", "started", "activated", "changed", "cancelled", "reactivated", "renewed",
        "paused", "resumed", "cancellation_scheduled", "scheduled_cancellation_removed",
        "pause_scheduled", "resumption_scheduled", "trial_extended",
    )]
    + ["mrr_updated", "customer_created", "customer_changed", "invoice_generated",
       "invoice_updated", "payment_succeeded", "payment_failed", "payment_refunded"]
)  # fmt: skip

# Chargebee names item prices "<item>-<CURRENCY>-<Period>" unless told otherwise.
PRICE_SUFFIX = re.compile(r"-[A-Z]{3}-(?:Daily|Weekly|Monthly|Yearly|Every-\d+-[A-Za-z]+)\Z")
# Line items that are not a recurring subscription charge: sales once paid.
ONE_OFF_ENTITIES = frozenset({"charge_item_price", "adhoc", "charge"})
RECURRING_ITEMS = frozenset({"plan", "addon"})
# A Chargebee invoice's status (https://apidocs.chargebee.com/docs/api/invoices, "status")
# as Planhat's (pending, paid, overdue; https://www.planhat.com/developers/api/invoice):
# paid → paid; posted (issued, not due yet) and pending (not closed yet: metered or
# pending-invoice items) → pending; payment_due (due and not collected, being retried) and
# not_paid (every collection attempt failed) → overdue. ``voided`` has no Planhat status:
# a dead letter (billing.voided); so has a status not listed here, rather than a guess.
INVOICE_STATUSES = {
    "paid": PAID,
    "posted": PENDING,
    "pending": PENDING,
    "payment_due": OVERDUE,
    "not_paid": OVERDUE,
}


@dataclass(frozen=True, slots=True)
class _Event:
    id: str
    occurred_at: int

    def change(
        self, resource: Resource, model: str, key_field: str, key: str, fields: dict[str, Any]
    ) -> Change:
        version = resource.get("resource_version") or self.occurred_at * 1000
        return Change(
            model=model,
            key_field=key_field,
            key=key,
            fields=present(fields),
            version=int(version),
            event_id=self.id,
        )

    def changes(self, resource: Resource, records: list[Record]) -> list[Change]:
        return [
            self.change(resource, model, "extId" if model == "invoices" else "sourceId", key, f)
            for model, key, f in records
        ]


def customer_changes(event: _Event, customer: Resource, options: BillingOptions) -> list[Change]:
    person = " ".join(p for p in (customer.get("first_name"), customer.get("last_name")) if p)
    name = customer.get("company") or person or customer.get("email") or customer["id"]
    key_field, reference = company_reference(options.company_key, customer["id"])
    if key_field == "externalId":
        fields: dict[str, Any] = {"name": name}
    else:
        fields = {"name": name, "externalId": dig(customer, options.company_key)}
    key = customer["id"]
    changes = [event.change(customer, "companies", key_field, key, fields)]
    if customer.get("email"):
        person_fields = {"email": customer["email"], "name": person or None, "companyId": reference}
        key = f"chargebee-{customer['id']}"
        changes.append(event.change(customer, "endusers", "sourceId", key, person_fields))
    return changes


def _items(subscription: Resource) -> list[Resource]:
    """Recurring items, Product Catalog 2.0 or 1.0, as {id, type, amount, period…}."""
    if "subscription_items" in subscription:
        return [
            i for i in subscription["subscription_items"] if i.get("item_type") in RECURRING_ITEMS
        ]
    plan = {
        "item_price_id": subscription.get("plan_id"),
        "quantity": subscription.get("plan_quantity"),
        "unit_price": subscription.get("plan_unit_price"),
        "amount": subscription.get("plan_amount"),
    }
    addons = [{"item_price_id": a.get("id"), **a} for a in subscription.get("addons") or []]
    return [i for i in (plan, *addons) if i.get("item_price_id")]


def _amount(item: Resource, what: str) -> float:
    """Cents per billing period: Chargebee's ``amount``, else unit price x quantity. All
    three are optional (https://apidocs.chargebee.com/docs/api/subscriptions?prod_cat_ver=2):
    no quantity counts once, as before; 0 is 0. With neither amount nor unit price,
    nothing says what the item earns: no MRR is stated."""
    amount, unit_price = item.get("amount"), item.get("unit_price")
    if amount is not None:
        return float(amount)
    if unit_price is None:
        raise RecordRejected(f"{what} has no amount or unit price, so its MRR cannot be computed")
    quantity = item.get("quantity")
    return float(unit_price) * (1 if quantity is None else quantity)


def _item(subscription: Resource, item: Resource, options: BillingOptions) -> Item:
    price_id = str(item["item_price_id"])
    what = f"Chargebee subscription {subscription['id']}: item price {price_id}"
    amount = _amount(item, what)
    unit = item.get("billing_period_unit") or subscription.get("billing_period_unit")
    count = item.get("billing_period") or subscription.get("billing_period")
    product = PRICE_SUFFIX.sub("", price_id) if options.product_name == "item" else price_id
    return Item(
        key=f"chargebee-{subscription['id']}-{price_id}",
        product=product,
        mrr=monthly(amount, unit, count, what=what),
        period_end=subscription.get("next_billing_at") or subscription.get("current_term_end"),
    )


def _currency(resource: Resource, what: str) -> str:
    # Required on a subscription and an invoice (https://apidocs.chargebee.com/docs/api/
    # subscriptions, …/invoices): amounts without it mean nothing.
    currency = resource.get("currency_code")
    if not isinstance(currency, str) or not currency:
        raise RecordRejected(f"Chargebee {what} {resource['id']} has no currency_code")
    return currency


def read_subscription(subscription: Resource, options: BillingOptions, now: int) -> Subscription:
    status = subscription.get("status")
    ended = status == "cancelled"
    cancelled_at, trial_end = subscription.get("cancelled_at"), subscription.get("trial_end")
    reasons = [subscription.get("cancel_reason_code"), subscription.get("cancel_reason")]
    return Subscription(
        churn_key=f"chargebee-churn-{subscription['id']}",
        company=options.company(subscription["customer_id"]),
        currency=_currency(subscription, "subscription"),
        status=status,
        started=subscription.get("started_at") or subscription.get("activated_at")
        or subscription.get("created_at"),
        items=[_item(subscription, item, options) for item in _items(subscription)],
        ended=ended,
        ended_at=cancelled_at or now,
        in_trial=status == "in_trial"
        or bool(ended and trial_end and cancelled_at and cancelled_at <= trial_end),
        paused=status == "paused",
        # non_renewing: cancelled_at is the date the cancellation is scheduled for.
        scheduled_end=(cancelled_at or subscription.get("current_term_end"))
        if status == "non_renewing" else None,
        reasons=[str(r) for r in reasons if r],
        earning_mrr=subscription.get("mrr") if status in ("active", "non_renewing") else None,
    )  # fmt: skip


def _status(invoice: Resource) -> str:
    status = invoice.get("status")
    if status == "voided":
        raise voided(f"Chargebee invoice {invoice['id']}")
    if status not in INVOICE_STATUSES:
        raise RecordRejected(
            f"Chargebee invoice {invoice['id']} has a status we do not know: {status!r}"
        )
    return INVOICE_STATUSES[status]


def _invoice(invoice: Resource, options: BillingOptions) -> Invoice:
    lines = [
        Line(
            description=line.get("description"),
            amount_cents=line.get("amount") or 0,
            sale_key=f"chargebee-sale-{line['id']}"
            if line.get("entity_type") in ONE_OFF_ENTITIES else None,
            product=line.get("entity_id"),
        )
        for line in invoice.get("line_items") or []
    ]  # fmt: skip
    return Invoice(
        key=str(invoice["id"]),
        company=options.company(invoice["customer_id"]),
        currency=_currency(invoice, "invoice"),
        status=_status(invoice),
        total_cents=invoice.get("total") or 0,
        date=invoice.get("date"),
        due_date=invoice.get("due_date"),
        paid_at=invoice.get("paid_at"),
        lines=lines,
    )


def event_changes(envelope: Resource, options: BillingOptions) -> list[Change]:
    event = _Event(id=str(envelope["id"]), occurred_at=int(envelope["occurred_at"]))
    content = envelope["content"]
    changes: list[Change] = []
    if customer := content.get("customer"):
        changes += customer_changes(event, customer, options)
    if subscription := content.get("subscription"):
        # RecordRejected rejects the whole event (connectors/billing.py), and with it the
        # customer and invoice it carries: a replay once the cause is fixed sends them all.
        read = read_subscription(subscription, options, event.occurred_at)
        changes += event.changes(subscription, subscription_records(read, options.trials))
    if invoice := content.get("invoice"):
        records = invoice_records(_invoice(invoice, options), event.occurred_at)
        changes += event.changes(invoice, records)
    return changes


def changes(body: bytes, event_id: str, options: Mapping[str, str] | None = None) -> list[Change]:
    try:
        envelope = load_json(body)
        if envelope["event_type"] not in MAPPED:
            return []
        return event_changes(envelope, BillingOptions.of(OPTIONS, options or {}))
    except MappingError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise MappingError(f"not a Chargebee event we can read: {error!r}") from None
