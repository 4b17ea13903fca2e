"""The ``planhat`` source: a Planhat Automation's webhook says a record changed; the engine
re-reads it (``PlanhatHints``), and ``changes`` turns what it read into a change made in
Planhat (``origin="planhat"``, keyed by ``_id``), or a deletion."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connectors.change import Change, MappingError, version_number
from connectors.options import Option
from connectors.planhat.reread import read_detail
from connectors.planhat_source.hints import read_hint, verify
from connectors.source import Hint
from connectors.webhooks import BodyError, load_json

# Planhat's own bookkeeping: never a change someone made.
SYSTEM_FIELDS = frozenset({"_id", "__v", "createdAt", "updatedAt", "lastUpdated"})


@dataclass(frozen=True, slots=True)
class PlanhatSource:
    name: str = "planhat"
    options: tuple[Option, ...] = ()
    checks_on_receipt: bool = False  # a body that names no record is refused by verify

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get("PLANHAT_WEBHOOK_SECRET")

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        return verify(headers, body, secret, now)

    def hint(self, body: bytes) -> Hint:
        try:
            return read_hint(load_json(body))
        except BodyError as error:
            raise MappingError(str(error)) from None

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        """``body`` is the detail the engine read (``connectors.planhat.reread``)."""
        try:
            model, planhat_id, record = read_detail(body)
        except ValueError as error:
            raise MappingError(f"not a Planhat detail: {error}") from None
        fields: dict[str, object] = {}
        version, action = 0, "deleted"
        if record is not None:
            fields = {k: v for k, v in record.items() if k not in SYSTEM_FIELDS}
            action = "updated"
            try:
                version = version_number(record.get("updatedAt") or 0)
            except ValueError:
                version = 0
        return [
            Change(
                model=model,
                key_field="_id",
                key=planhat_id,
                fields=fields,
                version=version,
                origin="planhat",
                action=action,
                event_id=event_id,
            )
        ]


SOURCE = PlanhatSource()
