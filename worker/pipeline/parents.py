"""Children whose company is not in Planhat yet: they wait, and wake when it arrives.

Sources deliver in any order: a license may come before its customer. A child rejected
because its company is unknown backs off and tries again, up to ``parent_wait_attempts``
times, then becomes a dead letter whose reason starts with ``WAITING``. When a flush
writes companies, the children waiting for them are woken at once, and the dead letters
buried only for want of them go back to the outbox: a late parent never leaves its
children behind.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import structlog
from sqlmodel import Session, col, select

from connectors.planhat.models import model_spec
from state.tables import DeadLetter, OutboxItem
from worker.pipeline.ingest import offer_again

log = structlog.get_logger(__name__)

WAITING = "its company is not in Planhat (yet)"


def company_key(model: str, fields: dict[str, Any]) -> str | None:
    """The record key of the company a record references by keyable, if any."""
    spec_company_key = model_spec(model).company_key
    ref = fields.get(spec_company_key) if spec_company_key else None
    if not isinstance(ref, str):
        return None
    if ref.startswith("extid-"):
        return f"externalId={ref[6:]}"
    if ref.startswith("srcid-"):
        return f"sourceId={ref[6:]}"
    return None


def wake_children(
    session: Session, connection: str, companies: Collection[str], now: datetime
) -> tuple[int, int]:
    """After ``companies`` (record keys) were written: children backing off for them are
    due now, and children buried for want of them are queued again. Returns both counts."""
    if not companies:
        return 0, 0
    woken = 0
    waiting = session.exec(
        select(OutboxItem).where(
            OutboxItem.connection == connection,
            col(OutboxItem.last_error).startswith(WAITING),
            OutboxItem.next_attempt_at > now,
        )
    )
    for row in waiting:
        if company_key(row.model, row.fields) in companies:
            row.next_attempt_at = now
            session.add(row)
            woken += 1
    revived = 0
    buried = session.exec(
        select(DeadLetter).where(
            DeadLetter.connection == connection, col(DeadLetter.reason).startswith(WAITING)
        )
    )
    for letter in buried:
        if company_key(letter.model, letter.fields) not in companies:
            continue
        offer_again(session, letter)
        session.delete(letter)
        revived += 1
    if woken or revived:
        log.info("flush.children_woken", connection=connection, woken=woken, revived=revived)
    return woken, revived
