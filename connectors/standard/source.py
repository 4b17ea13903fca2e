"""The ``standard`` source: Standard Webhooks signatures over planhat-sync's JSON body, both
ways: changes in (``mapping.py``), and changes made in Planhat out to the connection's
``standard.outbound_url`` for the models in ``standard.outbound_models`` (``outbound.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connectors.change import Change
from connectors.options import Option
from connectors.source import Ownership, WriteBack, WriteBackContext
from connectors.standard import outbound
from connectors.standard.mapping import parse
from connectors.standard.verify import verify

OWNED = r"([a-z]+\.[A-Za-z0-9_.-]+(,[a-z]+\.[A-Za-z0-9_.-]+)*)?"
OPTIONS = (
    Option(
        name="outbound_url",
        default="",
        pattern=r"(https?://\S+)?",
        help="where changes made in Planhat are POSTed (http:// or https://); none: off",
    ),
    Option(
        name="source_owns",
        default="",
        pattern=OWNED,
        help="model.field,… the sender owns: never written back, undone in Planhat",
    ),
    Option(
        name="planhat_owns",
        default="",
        pattern=OWNED,
        help="model.field,… Planhat owns: never overwritten from the sender, undone there",
    ),
    Option(
        name="outbound_models",
        default="",
        pattern=r"([a-z]+(,[a-z]+)*)?",
        help="Planhat models whose changes go out, comma-separated (tickets,tasks)",
    ),
)


@dataclass(frozen=True, slots=True)
class StandardSource:
    name: str = "standard"
    # The body names Planhat's fields itself; the options are the outbound direction's.
    options: tuple[Option, ...] = OPTIONS
    # The sender is the user: a body that cannot be mapped is answered 400, with the reason.
    checks_on_receipt: bool = True
    write_rate_per_minute: float = 600.0  # per connection's secret

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get("STANDARD_WEBHOOK_SECRET")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify(headers, body, secret, now)

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        return parse(body, event_id)

    def writes_back(self, model: str, options: Mapping[str, str]) -> bool:
        return bool(options.get("outbound_url")) and model in outbound.models(options)

    def write_back(self, context: WriteBackContext, change: WriteBack) -> None:
        outbound.send(context, change)

    def ownership(self, model: str, options: Mapping[str, str]) -> Ownership:
        def owned(option: str) -> frozenset[str]:
            pairs = (item.partition(".") for item in options.get(option, "").split(",") if item)
            return frozenset(name for owner_model, _, name in pairs if owner_model == model)

        return Ownership(source=owned("source_owns"), planhat=owned("planhat_owns"))


SOURCE = StandardSource()
