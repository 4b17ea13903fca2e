"""The ``chargebee`` source: Chargebee webhooks → Planhat companies, endusers, licenses,
churn, invoices and sales."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import httpx

from connectors.change import Change
from connectors.chargebee import backfill, mapping, poll, verify
from connectors.chargebee.mapping import OPTIONS
from connectors.options import Option
from connectors.source import Credential, Feed, ObjectList


@dataclass(frozen=True, slots=True)
class ChargebeeSource:
    name: str = "chargebee"
    options: tuple[Option, ...] = OPTIONS
    checks_on_receipt: bool = False
    credentials: tuple[Credential, ...] = (
        Credential(name="api_key", help="an API key that may read events"),
        Credential(name="site", help="the site: acme for acme.chargebee.com"),
    )
    api_base: str | None = None  # https://<site>.chargebee.com

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        username = environ.get("CHARGEBEE_WEBHOOK_USERNAME")
        password = environ.get("CHARGEBEE_WEBHOOK_PASSWORD")
        return f"{username}:{password}" if username and password else None

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify.verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return mapping.changes(body, event_id, options)

    def feeds(
        self, credentials: Mapping[str, str], options: Mapping[str, str], api_base: str | None
    ) -> Iterator[tuple[Feed, httpx.Client]]:
        return poll.feeds(credentials, api_base)

    def object_lists(
        self, credentials: Mapping[str, str], options: Mapping[str, str], api_base: str | None
    ) -> Iterator[tuple[ObjectList, httpx.Client]]:
        return backfill.object_lists(credentials, api_base)


SOURCE = ChargebeeSource()
