"""The Stripe fields custom field rules may read: an event's object, by its type.

Paths start at the object a customer or subscription event carries (``data.object``,
named by its ``object``: ``customer``, ``subscription``). Metadata keys are the account's
own, so any key is offered (https://docs.stripe.com/api/metadata: values are strings of
up to 500 characters). Times are unix seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors.custom_fields.paths import FieldPath

COMPANY = ("companies", "endusers")  # customer_changes (subscriptions.py)
LICENSE = ("licenses", "churn")  # subscription_changes

FIELD_PATHS = (
    FieldPath("customer.metadata.<key>", "text", COMPANY),
    FieldPath("customer.email", "text", COMPANY),
    FieldPath("customer.name", "text", COMPANY),
    FieldPath("customer.description", "text", COMPANY),
    FieldPath("customer.phone", "text", COMPANY),
    FieldPath("customer.currency", "text", COMPANY),
    FieldPath("customer.balance", "number", COMPANY),
    FieldPath("customer.created", "date", COMPANY),
    FieldPath("subscription.metadata.<key>", "text", LICENSE),
    FieldPath("subscription.status", "text", LICENSE),
    FieldPath("subscription.collection_method", "text", LICENSE),
    FieldPath("subscription.quantity", "number", LICENSE),
    FieldPath("subscription.created", "date", LICENSE),
    FieldPath("subscription.start_date", "date", LICENSE),
    FieldPath("subscription.current_period_end", "date", LICENSE),
    FieldPath("subscription.cancel_at", "date", LICENSE),
    FieldPath("subscription.trial_end", "date", LICENSE),
)
ROOTS = ("customer", "subscription")


def field_roots(body: bytes) -> Mapping[str, Any]:
    try:
        event = json.loads(body)
        obj = event["data"]["object"]
    except (ValueError, KeyError, TypeError):
        return {}  # the mapping says what is wrong with the event
    kind = obj.get("object") if isinstance(obj, dict) else None
    return {kind: obj} if kind in ROOTS else {}
