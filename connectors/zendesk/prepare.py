"""What a Zendesk ticket needs just before it is sent: its company (``companies.py``),
then its owner (``assignees.py``), one hook after the other on the same batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.source import PrepareContext, Prepared, PrepareHook
from connectors.zendesk.assignees import FindOwners
from connectors.zendesk.companies import PREPARE as COMPANIES


class InTurn:
    """Hooks run in turn: each on the records the one before gave, the same indices."""

    def __init__(self, *hooks: PrepareHook) -> None:
        self._hooks = hooks

    def __call__(
        self,
        context: PrepareContext,
        fields: Sequence[Mapping[str, Any]],
        records: Sequence[dict[str, Any]],
    ) -> Prepared:
        out, calls = list(records), 0
        refused: dict[int, str] = {}
        waiting: dict[int, str] = {}
        settled: dict[int, dict[str, Any]] = {}
        for hook in self._hooks:
            prepared = hook(context, fields, out)
            out, calls = prepared.records, calls + prepared.calls
            refused.update(prepared.refused)
            waiting.update(prepared.waiting)
            for index, found in prepared.settled.items():
                settled[index] = {**settled.get(index, {}), **found}
        return Prepared(records=out, refused=refused, waiting=waiting, calls=calls,
                        settled=settled)  # fmt: skip


PREPARE: Mapping[str, PrepareHook] = {"tickets": InTurn(COMPANIES["tickets"], FindOwners())}
