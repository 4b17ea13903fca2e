"""What every Stripe mapping shares: the connection's options and how a change is made."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.change import Change
from connectors.options import Option, company_reference

Event = dict[str, Any]
OPTIONS = (
    Option(
        "company_key",
        "id",
        r"id|metadata\.[A-Za-z0-9_.-]+",
        "'id' (the customer id is the company's externalId) or 'metadata.<key>' "
        "(that metadata value is; the customer id becomes its sourceId)",
    ),
    Option(
        "product_name",
        "nickname",
        r"nickname|product|price|lookup_key",
        "the license's product: 'nickname' (the price's nickname, else the product), "
        "'product' (the product's name when expanded, else its id), 'price' (the price id) "
        "or 'lookup_key' (the price's lookup key, else the product)",
    ),
    Option(
        "trials",
        "zero",
        r"zero|full|skip",
        "a trialing subscription is a license with MRR 0 ('zero'), with its price's MRR "
        "('full'), or no license until the trial converts ('skip')",
    ),
)


@dataclass(frozen=True, slots=True)
class StripeOptions:
    company_key: str = "id"
    product_name: str = "nickname"
    trials: str = "zero"

    @classmethod
    def of(cls, options: Mapping[str, str]) -> StripeOptions:
        return cls(**{o.name: options.get(o.name, o.default) for o in OPTIONS})

    def company(self, customer_id: str) -> str:
        """The reference children use for this customer's company."""
        return company_reference(self.company_key, customer_id)[1]


Mapper = Callable[[Event, StripeOptions], list[Change]]

# Fields sent even when empty, so a value that went away is cleared in Planhat (an undone
# scheduled cancellation leaves no end date). Other empty fields are left out.
CLEARABLE = frozenset({"toDate"})


def iso_day(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def change(event: Event, model: str, key_field: str, key: str, fields: dict[str, Any]) -> Change:
    return Change(
        model=model,
        key_field=key_field,
        key=key,
        fields={k: v for k, v in fields.items() if v is not None or k in CLEARABLE},
        version=int(event["created"]),
        event_id=str(event["id"]),
    )
