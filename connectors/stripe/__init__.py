"""The ``stripe`` source: Stripe webhooks → Planhat companies, endusers, licenses, churn,
invoices and sales."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connectors.change import Change
from connectors.options import Option
from connectors.stripe import mapping, verify
from connectors.stripe.common import OPTIONS


@dataclass(frozen=True, slots=True)
class StripeSource:
    name: str = "stripe"
    options: tuple[Option, ...] = OPTIONS
    needs_detail: bool = False
    checks_on_receipt: bool = False

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get("STRIPE_WEBHOOK_SECRET")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify.verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return mapping.changes(body, event_id, options)


SOURCE = StripeSource()
