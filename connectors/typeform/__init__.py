"""The ``typeform`` source: Typeform responses → Planhat NPS on the right enduser."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.change import Change
from connectors.custom_fields.paths import FieldPath
from connectors.options import Option
from connectors.source import Credential, Feed, PrepareHook
from connectors.surveys.respondents import PREPARE
from connectors.typeform import fields, mapping, poll, verify
from connectors.typeform.mapping import OPTIONS


@dataclass(frozen=True, slots=True)
class TypeformSource:
    name: str = "typeform"
    options: tuple[Option, ...] = OPTIONS
    checks_on_receipt: bool = False
    credentials: tuple[Credential, ...] = (
        Credential(
            name="api_key",
            help="a personal access token with responses:read",
            legacy_env="TYPEFORM_API_TOKEN",
        ),
    )
    api_base: str | None = poll.TYPEFORM_API
    prepare: Mapping[str, PrepareHook] = field(default_factory=lambda: PREPARE)
    field_paths: tuple[FieldPath, ...] = fields.FIELD_PATHS

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get("TYPEFORM_WEBHOOK_SECRET")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify.verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return mapping.changes(body, event_id, options)

    def field_roots(self, body: bytes) -> Mapping[str, Any]:
        return fields.field_roots(body)

    def feeds(
        self, credentials: Mapping[str, str], options: Mapping[str, str], api_base: str | None
    ) -> Iterator[tuple[Feed, httpx.Client]]:
        return poll.feeds(credentials, options.get("forms", ""), api_base)


SOURCE = TypeformSource()
