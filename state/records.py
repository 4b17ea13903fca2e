"""Repository functions over record state and the outbox, for the pipeline and the flush."""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import Session, col, select

from state.db import for_update
from state.tables import OutboxItem, RecordState


def pending_rows(
    session: Session, connection: str, model: str, keys: Collection[str]
) -> dict[str, OutboxItem]:
    """The outbox rows of these records, locked until the transaction ends (PostgreSQL),
    in key order: transactions locking overlapping rows wait for each other, never in a
    cycle."""
    query = (
        select(OutboxItem)
        .where(
            OutboxItem.connection == connection,
            OutboxItem.model == model,
            col(OutboxItem.key).in_(keys),
        )
        .order_by(col(OutboxItem.key))
    )
    return {row.key: row for row in session.exec(for_update(session, query))}


def record_states(
    session: Session,
    connection: str,
    models: Collection[str],
    keys: Collection[str],
    *,
    lock: bool = False,
) -> dict[tuple[str, str], RecordState]:
    """What we pushed for these records, by (model, key)."""
    query = select(RecordState).where(
        RecordState.connection == connection,
        col(RecordState.model).in_(models),
        col(RecordState.key).in_(keys),
    )
    if lock:
        query = for_update(session, query)
    return {(state.model, state.key): state for state in session.exec(query)}
