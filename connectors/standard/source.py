"""The ``standard`` source: Standard Webhooks signatures over planhat-sync's JSON body."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connectors.change import Change
from connectors.options import Option
from connectors.standard.mapping import parse
from connectors.standard.verify import verify


@dataclass(frozen=True, slots=True)
class StandardSource:
    name: str = "standard"
    options: tuple[Option, ...] = ()  # the body names Planhat's fields itself
    needs_detail: bool = False
    # The sender is the user: a bad body is answered 400 with the reason, instead of being
    # kept and buried, so they can fix it at once.
    checks_on_receipt: bool = True

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get("STANDARD_WEBHOOK_SECRET")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return parse(body, event_id)


SOURCE = StandardSource()
