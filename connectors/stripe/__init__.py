"""The ``stripe`` source: Stripe webhooks → Planhat companies, endusers, licenses, churn,
invoices and sales."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.change import Change
from connectors.custom_fields.paths import FieldPath
from connectors.options import Option
from connectors.source import Credential, Feed, ObjectList
from connectors.stripe import backfill, fields, mapping, poll, verify
from connectors.stripe.common import OPTIONS


@dataclass(frozen=True, slots=True)
class StripeSource:
    name: str = "stripe"
    options: tuple[Option, ...] = OPTIONS
    checks_on_receipt: bool = False
    credentials: tuple[Credential, ...] = (
        Credential(
            name="api_key",
            help="a secret or restricted key that may read events (and, to backfill, "
            "customers, subscriptions and invoices)",
        ),
    )
    api_base: str | None = poll.STRIPE_API
    field_paths: tuple[FieldPath, ...] = fields.FIELD_PATHS

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get("STRIPE_WEBHOOK_SECRET")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify.verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return mapping.changes(body, event_id, options)

    def field_roots(self, body: bytes) -> Mapping[str, Any]:
        return fields.field_roots(body)

    def feeds(
        self, credentials: Mapping[str, str], options: Mapping[str, str], api_base: str | None
    ) -> Iterator[tuple[Feed, httpx.Client]]:
        return poll.feeds(credentials, api_base)

    def object_lists(
        self, credentials: Mapping[str, str], options: Mapping[str, str], api_base: str | None
    ) -> Iterator[tuple[ObjectList, httpx.Client]]:
        return backfill.object_lists(credentials, api_base)


SOURCE = StripeSource()
