"""What a billing system's subscription means in Planhat, whichever system it comes from.

Each billing source reads its own payload into a ``Subscription`` and an ``Invoice``; the
rules here turn them into Planhat records, the same for Stripe and Chargebee:

- one license per recurring item, MRR normalised to a month (currency units);
- an ended subscription ends its licenses (``renewalStatus: lost``, ``toDate``) and makes
  one churn record with the MRR lost, its products and the reasons given; a trial that
  ends unpaid is no churn;
- a scheduled cancellation sets ``toDate`` and ``autoRenews: false``; undone, ``toDate`` is
  cleared (sent as null);
- an item taken off a subscription ends its license (``lost``, status ``removed``): a
  contraction, not churn;
- a paused subscription earns nothing: MRR 0 while paused;
- a trial is a license with MRR 0 (``trials=zero``), with its price's MRR (``full``) or
  no license until it converts (``skip``);
- an invoice becomes a Planhat invoice with the fields Planhat documents (``extId``/
  ``cId``, ``currency``, ``amountTotal``, ``status`` pending/paid/overdue, day-number
  ``invoiceDate``/``dueDate``/``paidDate``); once paid, its one-off lines become sales; a
  voided invoice has no Planhat status and becomes a dead letter;
- revenue is never guessed: an item with no price, no unit amount or no billing period,
  or a subscription or invoice with no currency, makes the whole event a dead letter
  saying why (``RecordRejected``), not a license with MRR 0, no product, no currency or a
  period taken for a month. Not just that license: the rest sent alone would understate
  the MRR without an error; a replay once the cause is fixed sends them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.change import RecordRejected
from connectors.options import Option

DAY = 86_400  # seconds

# Months in one billing interval; MRR = amount per interval ÷ months.
MONTHS_PER = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}

# Fields sent even when empty, so a value that went away is cleared in Planhat (an undone
# scheduled cancellation leaves no end date). Other empty fields are left out.
CLEARABLE = frozenset({"toDate"})

TRIALS = Option(
    "trials",
    "zero",
    r"zero|full|skip",
    "a subscription in trial is a license with MRR 0 ('zero'), with its price's MRR "
    "('full'), or no license until the trial converts ('skip')",
)

Record = tuple[str, str, dict[str, Any]]  # (model, key: its sourceId, or an invoice extId, fields)


@dataclass(frozen=True, slots=True)
class BillingOptions:
    """A billing connection's mapping options (each source declares their values)."""

    company_key: str
    product_name: str
    trials: str

    @classmethod
    def of(cls, declared: Sequence[Option], given: Mapping[str, str]) -> BillingOptions:
        return cls(**{o.name: given.get(o.name, o.default) for o in declared})

    def company(self, customer_id: str) -> str:
        """The reference children use for this customer's company."""
        return company_reference(self.company_key, customer_id)[1]


def iso_day(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def day_number(seconds: int | None) -> int | None:
    """A Planhat invoice date: whole days since 1970-01-01 in UTC ("days format integer",
    https://www.planhat.com/developers/api/invoice; planhat-api.md)."""
    return None if seconds is None else int(seconds) // DAY


def monthly(amount_cents: float, unit: str | None, count: int | None, *, what: str) -> float:
    """An amount per billing interval (cents) as a monthly amount in currency units.

    A recurring price always has a period; without one (or with a unit not known here)
    the MRR is not guessed as monthly: ``what`` (the item) is rejected."""
    if unit not in MONTHS_PER:
        raise RecordRejected(
            f"{what} has no billing period we know (unit {unit!r}), so its MRR cannot be computed"
        )
    months = MONTHS_PER[unit] * (count or 1)
    return round(amount_cents / 100 / months, 2)


def present(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields to send: empty ones left out, except those that clear a value."""
    return {k: v for k, v in fields.items() if v is not None or k in CLEARABLE}


def company_reference(company_key: str, customer_id: str) -> tuple[str, str]:
    """How the records of a billing customer point at its Planhat company.

    With ``company_key=id`` the company's ``externalId`` is the customer id. With a path
    (``metadata.account_id``) the company's ``externalId`` is that value (so a company
    another integration created with it is the one updated) and the customer id goes in
    ``sourceId``; licenses, invoices and churn, which carry only the customer id, then
    refer to ``srcid-<customer id>`` (planhat-api.md: reference fields accept keyables).
    Returns (the company change's key field, the reference children use).
    """
    if company_key == "id":
        return "externalId", f"extid-{customer_id}"
    return "sourceId", f"srcid-{customer_id}"


def dig(record: Mapping[str, object], path: str) -> str | None:
    """The value at a dotted ``path`` (``metadata.account_id``) as text, or None."""
    value: object = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    if value is None or value == "" or isinstance(value, Mapping | list):
        return None
    return str(value)


@dataclass(frozen=True, slots=True)
class Item:
    key: str  # the license's sourceId
    product: str | None
    mrr: float  # what it earns a month when active, currency units
    period_end: int | None = None  # unix seconds: the renewal date


@dataclass(frozen=True, slots=True)
class Subscription:
    churn_key: str  # the churn record's sourceId
    company: str  # the company reference: extid-… or srcid-…
    currency: str
    status: str | None  # the billing system's word, shown in Planhat
    started: int | None
    items: Sequence[Item]
    ended: bool = False
    ended_at: int | None = None
    in_trial: bool = False  # in trial now, or it ended during the trial
    paused: bool = False
    scheduled_end: int | None = None  # a cancellation to come
    reasons: Sequence[str] = field(default_factory=tuple)
    comment: str | None = None
    earning_mrr: float | None = None  # the billing system's own MRR figure, cents, if sent
    removed: Sequence[Item] = ()  # items taken off the subscription by this change
    changed_at: int | None = None  # when (the event's time)


def _item_mrrs(subscription: Subscription, earns: bool) -> list[float]:
    """Each item's MRR; the billing system's own total (after discounts), when it sends
    one for an earning subscription, is shared out in proportion, rounding on the last."""
    computed = [item.mrr for item in subscription.items]
    if not earns:
        return [0.0] * len(computed)
    total = sum(computed)
    if subscription.earning_mrr is None or not total or not computed:
        return computed
    target = round(subscription.earning_mrr / 100, 2)
    shares = [round(mrr * target / total, 2) for mrr in computed[:-1]]
    return [*shares, round(target - sum(shares), 2)]


def subscription_records(subscription: Subscription, trials: str) -> list[Record]:
    """The licenses (and churn) a subscription stands for, by the rules above."""
    if subscription.in_trial and trials == "skip":
        return []
    earns = not subscription.paused and (not subscription.in_trial or trials == "full")
    ended = subscription.ended
    records: list[Record] = []
    lost = 0.0
    for item, mrr in zip(subscription.items, _item_mrrs(subscription, earns), strict=True):
        to_date = iso_day(subscription.ended_at if ended else subscription.scheduled_end)
        fields = {
            "companyId": subscription.company,
            "product": item.product,
            "_currency": subscription.currency,
            "mrr": mrr,
            "fromDate": iso_day(subscription.started),
            "toDate": to_date,
            "renewalDate": iso_day(item.period_end),
            "autoRenews": to_date is None,
            "renewalStatus": "lost" if ended else "ongoing",
            "status": "paused" if subscription.paused and not ended else subscription.status,
        }
        lost += mrr
        records.append(("licenses", item.key, present(fields)))
    for item in subscription.removed:  # a contraction, not churn: the license just ends
        fields = {
            "companyId": subscription.company,
            "product": item.product,
            "_currency": subscription.currency,
            "mrr": item.mrr,
            "fromDate": iso_day(subscription.started),
            "toDate": iso_day(subscription.changed_at),
            "renewalDate": iso_day(item.period_end),
            "autoRenews": False,
            "renewalStatus": "lost",
            "status": "removed",
        }
        records.append(("licenses", item.key, present(fields)))
    if ended and not subscription.in_trial:
        churn = {
            "companyId": subscription.company,
            "churnDate": iso_day(subscription.ended_at),
            "value": round(lost, 2),
            "currency": subscription.currency or None,
            "products": [item.product for item in subscription.items if item.product],
            "reasons": list(subscription.reasons) or None,
            "comment": subscription.comment,
        }
        records.append(("churn", subscription.churn_key, present(churn)))
    return records


# Planhat's invoice statuses (https://www.planhat.com/developers/api/invoice). Planhat
# itself turns a pending invoice overdue once its due date has passed
# (https://help.planhat.com/en/articles/9581434-working-with-invoices).
PENDING, PAID, OVERDUE = "pending", "paid", "overdue"


def voided(what: str) -> RecordRejected:
    """A voided invoice: Planhat has no status for it (pending, paid or overdue would each
    say something false) and the sync deletes nothing, so it waits as a dead letter."""
    return RecordRejected(
        f"{what} is void, and a Planhat invoice is pending, paid or overdue: delete it in "
        "Planhat if it was sent before, then drop this dead letter"
    )


@dataclass(frozen=True, slots=True)
class Line:
    description: str | None
    amount_cents: int
    sale_key: str | None = None  # a one-off line's sale sourceId; None: recurring
    product: str | None = None


@dataclass(frozen=True, slots=True)
class Invoice:
    key: str  # extId
    company: str  # cId reference
    currency: str
    status: str  # Planhat's: PENDING, PAID or OVERDUE, by each source's rule
    total_cents: int
    date: int | None  # unix seconds, as the billing system gives them
    due_date: int | None
    paid_at: int | None
    lines: Sequence[Line]  # for the sales of a paid invoice; Planhat makes its own lineItems


def invoice_records(invoice: Invoice, fallback_paid_at: int) -> list[Record]:
    """A Planhat invoice; when paid, a sale per one-off line.

    Only the fields Planhat's invoice page documents
    (https://www.planhat.com/developers/api/invoice): a real tenant keeps nothing else, and
    ``invoiceNo``, ``lineItems``, ``cName`` and ``lastUpdated`` are Planhat's to generate.
    Dates are day numbers (whole days since 1970-01-01), as that page asks. The billing
    system's own invoice number, amount due or paid and subscription have no Planhat field.
    The invoice's record key is its ``extId``, the sales' their ``sourceId``."""
    fields = {
        "cId": invoice.company,
        "currency": invoice.currency,
        "status": invoice.status,
        "amountTotal": invoice.total_cents / 100,
        "invoiceDate": day_number(invoice.date),
        "dueDate": day_number(invoice.due_date),
        "paidDate": day_number(invoice.paid_at),
    }
    records: list[Record] = [("invoices", invoice.key, present(fields))]
    if invoice.status != PAID:
        return records
    for line in invoice.lines:
        if line.sale_key is None or not line.amount_cents:
            continue
        sale = {
            "companyId": invoice.company,
            "_currency": invoice.currency,
            "salesDate": iso_day(invoice.paid_at or fallback_paid_at),
            "value": line.amount_cents / 100,
            "product": line.product,
            "description": line.description,
        }
        records.append(("sales", line.sale_key, present(sale)))
    return records
