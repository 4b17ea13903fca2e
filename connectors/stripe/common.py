"""What every Stripe mapping shares: the connection's options and how a change is made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.billing import TRIALS, BillingOptions, Record, present
from connectors.change import Change
from connectors.options import Option

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
    TRIALS,
)


Mapper = Callable[[Event, BillingOptions], list[Change]]


def change(event: Event, model: str, key_field: str, key: str, fields: dict[str, Any]) -> Change:
    return Change(
        model=model,
        key_field=key_field,
        key=key,
        fields=present(fields),
        version=int(event["created"]),
        event_id=str(event["id"]),
    )


def changes_of(event: Event, records: list[Record]) -> list[Change]:
    """Billing records as changes: invoices keyed by ``extId``, the rest by ``sourceId``."""
    return [
        change(event, model, "extId" if model == "invoices" else "sourceId", key, fields)
        for model, key, fields in records
    ]
