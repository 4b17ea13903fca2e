"""The ``typeform`` source: Typeform responses → Planhat NPS on the right enduser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connectors.change import Change
from connectors.options import Option
from connectors.typeform import mapping, verify
from connectors.typeform.mapping import OPTIONS


@dataclass(frozen=True, slots=True)
class TypeformSource:
    name: str = "typeform"
    options: tuple[Option, ...] = OPTIONS
    needs_detail: bool = False
    checks_on_receipt: bool = False

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get("TYPEFORM_WEBHOOK_SECRET")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify.verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return mapping.changes(body, event_id, options)


SOURCE = TypeformSource()
