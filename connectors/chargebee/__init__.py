"""The ``chargebee`` source: Chargebee webhooks → Planhat companies, endusers, licenses,
churn, invoices and sales."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connectors.change import Change
from connectors.chargebee import mapping, verify
from connectors.chargebee.mapping import OPTIONS
from connectors.options import Option


@dataclass(frozen=True, slots=True)
class ChargebeeSource:
    name: str = "chargebee"
    options: tuple[Option, ...] = OPTIONS
    needs_detail: bool = False
    checks_on_receipt: bool = False

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        username = environ.get("CHARGEBEE_WEBHOOK_USERNAME")
        password = environ.get("CHARGEBEE_WEBHOOK_PASSWORD")
        return f"{username}:{password}" if username and password else None

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify.verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return mapping.changes(body, event_id, options)


SOURCE = ChargebeeSource()
