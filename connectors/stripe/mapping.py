"""Stripe events → Planhat changes: which mapping reads which event type.

Mappings are pure functions of the event and the connection's options, and read both
payload generations (before and after API 2025-03-31, "basil"). Event types not mapped
return no change: the event is kept and marked "ignored".
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.billing import BillingOptions
from connectors.change import Change, MappingError
from connectors.stripe.common import OPTIONS, Mapper
from connectors.stripe.invoices import invoice_changes
from connectors.stripe.subscriptions import customer_changes, subscription_changes
from connectors.webhooks import load_json

SUBSCRIPTION_EVENTS = ("created", "updated", "paused", "resumed", "trial_will_end", "deleted")
INVOICE_EVENTS = (
    "created",
    "updated",
    "finalized",
    "paid",
    "payment_succeeded",
    "payment_failed",
    "voided",
    "marked_uncollectible",
)
MAPPERS: dict[str, Mapper] = {
    "customer.created": customer_changes,
    "customer.updated": customer_changes,
    **{f"customer.subscription.{kind}": subscription_changes for kind in SUBSCRIPTION_EVENTS},
    **{f"invoice.{kind}": invoice_changes for kind in INVOICE_EVENTS},
}


def changes(body: bytes, event_id: str, options: Mapping[str, str] | None = None) -> list[Change]:
    try:
        event = load_json(body)
        mapper = MAPPERS.get(event["type"])
        return mapper(event, BillingOptions.of(OPTIONS, options or {})) if mapper else []
    except MappingError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise MappingError(f"not a Stripe event we can read: {error!r}") from None
