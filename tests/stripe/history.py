"""A generated Stripe billing history, and what the billing system holds at its end.

``history(customers, seed)`` plays a deterministic life for each customer: sign-up, a
subscription of one or two items, then upgrades, downgrades, quantity changes, renewals
paid or failed (some retried and paid), one-off charges and renames, and for about a
quarter a cancellation. Half the customers speak API 2020-08-27, half 2025-03-31 ("basil");
every event carries the full object, shaped like the fixtures in ``tests/fixtures/stripe``.

The expected state is kept the way the billing system sees it, not by running our mapping:
per subscription item its MRR in cents (``unit_amount * quantity`` per month), per customer
the MRR of its live subscription, per invoice its status, total and dates, per paid one-off line
a sale, per cancelled subscription the MRR it lost. Prices are chosen so a yearly price is
a whole number of cents a month: every MRR is exact, to the cent.
"""

from __future__ import annotations

import random
import string
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

OLD = "2020-08-27"
BASIL = "2025-03-31.basil"
DAY = 86_400
START = 1_735_689_600  # 2025-01-01
PERIOD = {"month": 30 * DAY, "year": 365 * DAY}
MONTHS = {"month": 1, "year": 12}

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Price:
    id: str
    product: str
    nickname: str
    unit_amount: int  # cents per interval
    interval: str  # "month" | "year"


def _ladder(tiers: list[tuple[str, str, int, int]], interval: str) -> list[Price]:
    """Prices from cheapest to dearest: an upgrade is one rung up, a downgrade one down."""
    return [
        Price(
            id=f"price_{key}_{interval}ly",
            product=f"prod_{key}",
            nickname=f"{name} ({interval}ly)",
            unit_amount=monthly if interval == "month" else yearly,
            interval=interval,
        )
        for key, name, monthly, yearly in tiers
    ]


# (key, name, cents a month, cents a year); every yearly amount divides by 12.
PLANS = [
    ("basic", "Basic", 1500, 15000),
    ("team", "Team", 4900, 49200),
    ("business", "Business", 9900, 99000),
    ("enterprise", "Enterprise", 29900, 298800),
]
ADDONS = [("support", "Support", 2000, 24000), ("premium", "Premium support", 5000, 60000)]
LADDERS = {interval: [_ladder(PLANS, interval), _ladder(ADDONS, interval)] for interval in MONTHS}
ONE_OFF = [  # (product, description, cents)
    ("prod_onboarding", "Onboarding package", 50000),
    ("prod_training", "Training day", 120000),
    ("prod_migration", "Data migration", 35000),
]
FEEDBACK = [None, "too_expensive", "missing_features", "switched_service", "unused"]
WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Vandelay"]
KINDS = ["Inc", "GmbH", "Ltd", "BV", "SAS", "Labs", "Group"]


def iso_day(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


# --- what the billing system holds --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class License:
    company: str  # the customer id
    product: str  # the price's nickname
    mrr_cents: int
    renewal_status: str  # "ongoing" | "lost"
    status: str  # the subscription's status
    from_date: str
    renewal_date: str
    to_date: str | None


@dataclass(frozen=True, slots=True)
class Invoice:
    company: str
    # In Planhat's words: "paid", or "overdue" for one charged automatically (due when
    # issued) whose payment failed and was not retried yet.
    status: str
    total_cents: int
    date: int  # the day it was issued: days since 1970-01-01
    paid_date: int | None  # the day it was paid
    api_version: str


@dataclass(frozen=True, slots=True)
class Sale:
    company: str
    value_cents: int
    sales_date: str
    product: str
    description: str
    api_version: str


@dataclass(frozen=True, slots=True)
class Churn:
    company: str
    value_cents: int
    churn_date: str
    reasons: tuple[str, ...]


@dataclass(slots=True)
class Expected:
    companies: dict[str, str] = field(default_factory=dict)  # customer id → name
    endusers: dict[str, tuple[str, str]] = field(default_factory=dict)  # sourceId → (email, name)
    licenses: dict[str, License] = field(default_factory=dict)  # item id → license
    mrr_cents: dict[str, int] = field(default_factory=dict)  # customer id → live MRR
    invoices: dict[str, Invoice] = field(default_factory=dict)  # invoice id → invoice
    sales: dict[str, Sale] = field(default_factory=dict)  # stripe-sale-<line id> → sale
    churn: dict[str, Churn] = field(default_factory=dict)  # stripe-churn-<sub id> → churn


@dataclass(slots=True)
class History:
    events: list[Event]
    expected: Expected
    api_version: dict[str, str]  # customer id → the API version its events speak

    def by_type(self) -> Counter[str]:
        return Counter(str(event["type"]) for event in self.events)

    def by_version(self) -> Counter[str]:
        return Counter(str(event["api_version"]) for event in self.events)


# --- the billing system's own objects -----------------------------------------------------


@dataclass(slots=True)
class _Item:
    id: str
    price: Price
    quantity: int
    created: int
    rung: tuple[int, int]  # (ladder, step)

    @property
    def mrr_cents(self) -> int:
        cents, months = self.price.unit_amount * self.quantity, MONTHS[self.price.interval]
        assert cents % months == 0, "prices are chosen so MRR is whole cents"
        return cents // months


@dataclass(slots=True)
class _Subscription:
    id: str
    customer: str
    created: int
    interval: str
    items: list[_Item]
    status: str = "active"
    period_start: int = 0
    period_end: int = 0
    latest_invoice: str | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    reason: str | None = None
    feedback: str | None = None


@dataclass(slots=True)
class _Line:
    id: str
    amount: int
    quantity: int
    description: str
    price: Price | None  # a subscription item's price; None: a one-off line
    item: str | None = None  # the subscription item id
    product: str = ""  # a one-off line's product
    invoice_item: str | None = None


@dataclass(slots=True)
class _Invoice:
    id: str
    number: str
    customer: str
    subscription: str
    created: int
    billing_reason: str
    lines: list[_Line]
    period: tuple[int, int]
    status: str = "draft"
    paid_at: int | None = None

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.taken: set[str] = set()
        self.events: list[Event] = []
        self.expected = Expected()
        self.versions: dict[str, str] = {}
        self.prefixes: dict[str, str] = {}  # customer id → its invoice number prefix
        self.clock = 0  # the last event's ``created``

    def ident(self, prefix: str, length: int = 14) -> str:
        alphabet = string.ascii_letters + string.digits
        while True:
            candidate = f"{prefix}_{''.join(self.rng.choices(alphabet, k=length))}"
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate

    # --- one customer's life ------------------------------------------------------------

    def customer(self, n: int) -> None:
        rng = self.rng
        version = OLD if n % 2 == 0 else BASIL
        customer_id = self.ident("cus")
        self.versions[customer_id] = version
        now = START + rng.randint(0, 60 * DAY)
        name = f"{rng.choice(WORDS)} {n:03d} {rng.choice(KINDS)}"
        email = f"billing@customer-{n:03d}.example"
        prefix = "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
        self.prefixes[customer_id] = prefix
        customer = {
            "id": customer_id,
            "name": name,
            "email": email,
            "created": now,
            "invoice_prefix": prefix,
        }
        self.clock = 0  # this customer's events: strictly increasing ``created``
        self.emit(version, "customer.created", now, self.customer_object(customer))
        now += 60

        interval = rng.choice(["month", "year"])
        plans, addons = LADDERS[interval]
        items = [self.item(0, rng.randrange(len(plans)), rng.randint(1, 20), now, interval)]
        if rng.random() < 0.5:
            items.append(self.item(1, rng.randrange(len(addons)), rng.randint(1, 5), now, interval))
        sub = _Subscription(self.ident("sub", 24), customer_id, now, interval, items)
        sub.period_start, sub.period_end = now, now + PERIOD[interval]
        invoice = self.invoice(sub, now, "subscription_create", 1)
        sub.latest_invoice = invoice.id
        self.emit(version, "customer.subscription.created", now, self.subscription_object(sub))
        now = self.pay(version, invoice, now + 2)

        failed: _Invoice | None = None  # a renewal whose payment failed, not yet paid
        removed: list[tuple[_Item, int, int]] = []  # (item, when, period end then)
        invoices = 1
        for _ in range(rng.randint(2, 7)):
            now += rng.randint(DAY, 20 * DAY)
            step = rng.choices(
                ["upgrade", "downgrade", "quantity", "renew", "renew_fails", "retry", "rename",
                 "remove"],
                weights=[3, 2, 3, 3, 2, 2, 1, 1],
            )[0]  # fmt: skip
            if step == "remove" and len(sub.items) < 2:
                step = "quantity"
            if step == "retry" and failed is None:
                step = "renew"
            moves = {"upgrade": 1, "downgrade": -1}
            if step in moves and not self.move(sub, moves[step]):
                step = "quantity"
            if step == "quantity":
                item = rng.choice(sub.items)
                item.quantity = rng.choice([q for q in range(1, 31) if q != item.quantity])
            if step in ("upgrade", "downgrade", "quantity"):
                previous = {"items": {"object": "list"}}
                self.emit(
                    version,
                    "customer.subscription.updated",
                    now,
                    self.subscription_object(sub),
                    previous,
                )
            elif step == "remove":  # the add-on taken off: its license ends, no churn
                before = self.subscription_object(sub)["items"]["data"]
                gone = sub.items.pop()
                removed.append((gone, now, sub.period_end))
                self.emit(
                    version,
                    "customer.subscription.updated",
                    now,
                    self.subscription_object(sub),
                    {"items": {"object": "list", "data": before}},
                )
            elif step in ("renew", "renew_fails"):
                invoices += 1
                previous = {"current_period_start": sub.period_start, "status": sub.status}
                sub.period_start, sub.period_end = now, now + PERIOD[sub.interval]
                invoice = self.invoice(sub, now, "subscription_cycle", invoices)
                sub.latest_invoice = invoice.id
                sub.status = "past_due" if step == "renew_fails" else "active"
                self.emit(
                    version,
                    "customer.subscription.updated",
                    now,
                    self.subscription_object(sub),
                    previous,
                )
                if step == "renew":
                    now = self.pay(version, invoice, now + 2)
                else:
                    now = self.fail(version, invoice, now + 2)
                    failed = invoice
            elif step == "retry":
                assert failed is not None
                now = self.pay(version, failed, now)
                failed = None
                if sub.status == "past_due":
                    sub.status = "active"
                    self.emit(
                        version,
                        "customer.subscription.updated",
                        now + 1,
                        self.subscription_object(sub),
                        {"status": "past_due"},
                    )
                    now += 1
            elif step == "rename":
                customer["name"] = name = f"{rng.choice(WORDS)} {n:03d} {rng.choice(KINDS)} (new)"
                self.emit(
                    version,
                    "customer.updated",
                    now,
                    self.customer_object(customer),
                    {"name": "previous"},
                )

        ended = rng.random() < 0.25
        if ended:
            now += rng.randint(DAY, 20 * DAY)
            sub.status, sub.canceled_at, sub.ended_at = "canceled", now, now
            if failed is not None:
                sub.reason, sub.feedback = "payment_failed", None
            else:
                sub.reason, sub.feedback = "cancellation_requested", rng.choice(FEEDBACK)
            self.emit(version, "customer.subscription.deleted", now, self.subscription_object(sub))

        # What the billing system now holds for this customer.
        self.expected.companies[customer_id] = name
        self.expected.endusers[f"stripe-{customer_id}"] = (email, name)
        lost = 0
        for item in sub.items:
            self.expected.licenses[item.id] = License(
                company=customer_id,
                product=item.price.nickname,
                mrr_cents=item.mrr_cents,
                renewal_status="lost" if ended else "ongoing",
                status=sub.status,
                from_date=iso_day(sub.created),
                renewal_date=iso_day(sub.period_end),
                to_date=iso_day(now) if ended else None,
            )
            lost += item.mrr_cents
        for item, when, period_end in removed:
            self.expected.licenses[item.id] = License(
                company=customer_id,
                product=item.price.nickname,
                mrr_cents=item.mrr_cents,
                renewal_status="lost",
                status="removed",
                from_date=iso_day(sub.created),
                renewal_date=iso_day(period_end),
                to_date=iso_day(when),
            )
        self.expected.mrr_cents[customer_id] = 0 if ended else lost
        if ended:
            reasons = tuple(r for r in (sub.reason, sub.feedback) if r)
            self.expected.churn[f"stripe-churn-{sub.id}"] = Churn(
                company=customer_id, value_cents=lost, churn_date=iso_day(now), reasons=reasons
            )

    def item(self, ladder: int, step: int, quantity: int, now: int, interval: str) -> _Item:
        price = LADDERS[interval][ladder][step]
        return _Item(self.ident("si"), price, quantity, now, (ladder, step))

    def move(self, sub: _Subscription, direction: int) -> bool:
        """Swap one item's price a rung up or down its ladder: the item keeps its id."""
        movable = [
            item
            for item in sub.items
            if 0 <= item.rung[1] + direction < len(LADDERS[sub.interval][item.rung[0]])
        ]
        if not movable:
            return False
        item = self.rng.choice(movable)
        ladder, step = item.rung[0], item.rung[1] + direction
        item.rung, item.price = (ladder, step), LADDERS[sub.interval][ladder][step]
        return True

    def invoice(self, sub: _Subscription, now: int, reason: str, count: int) -> _Invoice:
        lines = [
            _Line(
                id=self.ident("il", 24),
                amount=item.price.unit_amount * item.quantity,
                quantity=item.quantity,
                description=f"{item.quantity} x {item.price.nickname}",
                price=item.price,
                item=item.id,
            )
            for item in sub.items
        ]
        if self.rng.random() < 0.3:
            product, description, cents = self.rng.choice(ONE_OFF)
            lines.append(
                _Line(
                    id=self.ident("il", 24),
                    amount=cents,
                    quantity=1,
                    description=description,
                    price=None,
                    product=product,
                    invoice_item=self.ident("ii", 24),
                )
            )
        return _Invoice(
            id=self.ident("in", 24),
            number=f"{self.prefixes[sub.customer]}-{count:04d}",
            customer=sub.customer,
            subscription=sub.id,
            created=now,
            billing_reason=reason,
            lines=lines,
            period=(sub.period_start, sub.period_end),
        )

    def pay(self, version: str, invoice: _Invoice, now: int) -> int:
        invoice.status, invoice.paid_at = "paid", now
        self.emit(version, "invoice.paid", now, self.invoice_object(invoice, version))
        self.expect_invoice(invoice, version, "paid")
        for line in invoice.lines:
            if line.price is None:
                self.expected.sales[f"stripe-sale-{line.id}"] = Sale(
                    company=invoice.customer,
                    value_cents=line.amount,
                    sales_date=iso_day(now),
                    product=line.product,
                    description=line.description,
                    api_version=version,
                )
        return now

    def fail(self, version: str, invoice: _Invoice, now: int) -> int:
        invoice.status = "open"
        self.emit(version, "invoice.payment_failed", now, self.invoice_object(invoice, version))
        self.expect_invoice(invoice, version, "overdue")
        return now

    def expect_invoice(self, invoice: _Invoice, version: str, status: str) -> None:
        self.expected.invoices[invoice.id] = Invoice(
            company=invoice.customer,
            status=status,
            total_cents=invoice.total,
            date=invoice.created // DAY,
            paid_date=None if invoice.paid_at is None else invoice.paid_at // DAY,
            api_version=version,
        )

    def emit(
        self,
        version: str,
        kind: str,
        created: int,
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
    ) -> None:
        assert created > self.clock, "a customer's events are created one after another"
        self.clock = created
        data: dict[str, Any] = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        self.events.append(
            {
                "id": self.ident("evt", 24),
                "object": "event",
                "api_version": version,
                "created": created,
                "data": data,
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": self.ident("req"), "idempotency_key": None},
                "type": kind,
            }
        )

    # --- payload shapes (tests/fixtures/stripe) -------------------------------------------

    @staticmethod
    def customer_object(customer: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": customer["id"],
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": customer["created"],
            "currency": "usd",
            "default_source": None,
            "delinquent": False,
            "description": None,
            "discount": None,
            "email": customer["email"],
            "invoice_prefix": customer["invoice_prefix"],
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": {},
            "name": customer["name"],
            "next_invoice_sequence": 1,
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }

    @staticmethod
    def price_object(price: Price, version: str) -> dict[str, Any]:
        recurring: dict[str, Any] = {
            "interval": price.interval,
            "interval_count": 1,
            "trial_period_days": None,
            "usage_type": "licensed",
        }
        recurring |= {"aggregate_usage": None} if version == OLD else {"meter": None}
        return {
            "id": price.id,
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": START - 90 * DAY,
            "currency": "usd",
            "livemode": False,
            "lookup_key": None,
            "metadata": {},
            "nickname": price.nickname,
            "product": price.product,
            "recurring": recurring,
            "tax_behavior": "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring",
            "unit_amount": price.unit_amount,
            "unit_amount_decimal": str(price.unit_amount),
        }

    @staticmethod
    def plan_object(price: Price) -> dict[str, Any]:
        """The legacy ``plan`` beside ``price`` on a subscription item."""
        return {
            "id": price.id,
            "object": "plan",
            "active": True,
            "aggregate_usage": None,
            "amount": price.unit_amount,
            "amount_decimal": str(price.unit_amount),
            "billing_scheme": "per_unit",
            "created": START - 90 * DAY,
            "currency": "usd",
            "interval": price.interval,
            "interval_count": 1,
            "livemode": False,
            "metadata": {},
            "nickname": price.nickname,
            "product": price.product,
            "tiers_mode": None,
            "transform_usage": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        }

    def subscription_object(self, sub: _Subscription) -> dict[str, Any]:
        """The full subscription as Stripe sends it; the current period sits on the
        subscription before 2025-03-31 and on each item from then on."""
        version = self.versions[sub.customer]
        items = []
        for item in sub.items:
            data: dict[str, Any] = {
                "id": item.id,
                "object": "subscription_item",
                "billing_thresholds": None,
                "created": item.created,
                "metadata": {},
                "plan": self.plan_object(item.price),
                "price": self.price_object(item.price, version),
                "quantity": item.quantity,
                "subscription": sub.id,
                "tax_rates": [],
            }
            if version == BASIL:
                data |= {
                    "current_period_start": sub.period_start,
                    "current_period_end": sub.period_end,
                    "discounts": [],
                }
            items.append(data)
        details = {"comment": None, "feedback": sub.feedback, "reason": sub.reason}
        obj: dict[str, Any] = {
            "id": sub.id,
            "object": "subscription",
            "application_fee_percent": None,
            "automatic_tax": {"enabled": False},
            "billing_cycle_anchor": sub.created,
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": sub.canceled_at,
            "cancellation_details": details,
            "collection_method": "charge_automatically",
            "created": sub.created,
            "currency": "usd",
            "customer": sub.customer,
            "days_until_due": None,
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "ended_at": sub.ended_at,
            "items": {
                "object": "list",
                "data": items,
                "has_more": False,
                "total_count": len(items),
                "url": f"/v1/subscription_items?subscription={sub.id}",
            },
            "latest_invoice": sub.latest_invoice,
            "livemode": False,
            "metadata": {},
            "next_pending_invoice_item_invoice": None,
            "pause_collection": None,
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": sub.created,
            "status": sub.status,
            "test_clock": None,
            "transfer_data": None,
            "trial_end": None,
            "trial_start": None,
        }
        if version == OLD:
            single = sub.items[0] if len(sub.items) == 1 else None
            obj |= {
                "current_period_start": sub.period_start,
                "current_period_end": sub.period_end,
                "discount": None,
                "plan": self.plan_object(single.price) if single else None,
                "quantity": single.quantity if single else None,
            }
        else:
            obj |= {"discounts": [], "invoice_settings": {"issuer": {"type": "self"}}}
        return obj

    def line_object(self, invoice: _Invoice, line: _Line, version: str) -> dict[str, Any]:
        common: dict[str, Any] = {
            "id": line.id,
            "object": "line_item",
            "amount": line.amount,
            "currency": "usd",
            "description": line.description,
            "discount_amounts": [],
            "discountable": True,
            "discounts": [],
            "livemode": False,
            "metadata": {},
            "period": {"start": invoice.period[0], "end": invoice.period[1]},
            "quantity": line.quantity,
        }
        if line.price is not None:
            unit = line.price.unit_amount
            if version == OLD:
                return common | {
                    "plan": self.plan_object(line.price),
                    "price": self.price_object(line.price, version),
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": invoice.subscription,
                    "subscription_item": line.item,
                    "tax_amounts": [],
                    "tax_rates": [],
                    "type": "subscription",
                }
            return common | {
                "invoice": invoice.id,
                "parent": {
                    "type": "subscription_item_details",
                    "invoice_item_details": None,
                    "subscription_item_details": {
                        "invoice_item": None,
                        "proration": False,
                        "proration_details": {"credited_items": None},
                        "subscription": invoice.subscription,
                        "subscription_item": line.item,
                    },
                },
                "pretax_credit_amounts": [],
                "pricing": {
                    "type": "price_details",
                    "price_details": {"price": line.price.id, "product": line.price.product},
                    "unit_amount_decimal": str(unit),
                },
                "subscription": invoice.subscription,
                "taxes": [],
            }
        if version == OLD:
            return common | {
                "invoice_item": line.invoice_item,
                "plan": None,
                "price": {
                    "id": f"price_{line.product.removeprefix('prod_')}_once",
                    "object": "price",
                    "active": False,
                    "billing_scheme": "per_unit",
                    "created": invoice.created,
                    "currency": "usd",
                    "livemode": False,
                    "lookup_key": None,
                    "metadata": {},
                    "nickname": None,
                    "product": line.product,
                    "recurring": None,
                    "tax_behavior": "unspecified",
                    "tiers_mode": None,
                    "transform_quantity": None,
                    "type": "one_time",
                    "unit_amount": line.amount,
                    "unit_amount_decimal": str(line.amount),
                },
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": None,
                "tax_amounts": [],
                "tax_rates": [],
                "type": "invoiceitem",
            }
        return common | {
            "invoice": invoice.id,
            "parent": {
                "type": "invoice_item_details",
                "invoice_item_details": {
                    "invoice_item": line.invoice_item,
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": invoice.subscription,
                },
                "subscription_item_details": None,
            },
            "pretax_credit_amounts": [],
            "pricing": {
                "type": "price_details",
                "price_details": {
                    "price": f"price_{line.product.removeprefix('prod_')}_once",
                    "product": line.product,
                },
                "unit_amount_decimal": str(line.amount),
            },
            "subscription": None,
            "taxes": [],
        }

    def invoice_object(self, invoice: _Invoice, version: str) -> dict[str, Any]:
        paid = invoice.status == "paid"
        total = invoice.total
        lines = [self.line_object(invoice, line, version) for line in invoice.lines]
        obj: dict[str, Any] = {
            "id": invoice.id,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Example Company, Inc.",
            "amount_due": total,
            "amount_paid": total if paid else 0,
            "amount_remaining": 0 if paid else total,
            "attempt_count": 1,
            "attempted": True,
            "auto_advance": not paid,
            "automatic_tax": {"enabled": False, "status": None},
            "billing_reason": invoice.billing_reason,
            "collection_method": "charge_automatically",
            "created": invoice.created,
            "currency": "usd",
            "custom_fields": None,
            "customer": invoice.customer,
            "customer_email": None,
            "customer_name": None,
            "default_payment_method": None,
            "description": None,
            "discounts": [],
            "due_date": None,
            "ending_balance": 0,
            "footer": None,
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": False,
                "total_count": len(lines),
                "url": f"/v1/invoices/{invoice.id}/lines",
            },
            "livemode": False,
            "metadata": {},
            "next_payment_attempt": None if paid else invoice.created + 3 * DAY,
            "number": invoice.number,
            "period_end": invoice.period[0],
            "period_start": invoice.period[0],
            "starting_balance": 0,
            "status": invoice.status,
            "status_transitions": {
                "finalized_at": invoice.created + 1,
                "marked_uncollectible_at": None,
                "paid_at": invoice.paid_at,
                "voided_at": None,
            },
            "subtotal": total,
            "total": total,
        }
        if version == OLD:
            obj |= {
                "charge": f"ch_{invoice.id.removeprefix('in_')}",
                "paid": paid,
                "payment_intent": f"pi_{invoice.id.removeprefix('in_')}",
                "subscription": invoice.subscription,
                "tax": None,
                "total_tax_amounts": [],
            }
        else:
            obj |= {
                "parent": {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {"metadata": {}, "subscription": invoice.subscription},
                },
                "total_taxes": [],
            }
        return obj


def history(customers: int, seed: int = 0) -> History:
    """``customers`` customers' billing histories, deterministic for a ``seed``."""
    generator = _Generator(seed)
    for n in range(customers):
        generator.customer(n)
    return History(generator.events, generator.expected, generator.versions)
