"""Throughput and lag over time, per connection: what the status page's charts draw.

One grouped query over the inbox (its ``received_at`` index), so a busy day costs one
scan of that day's events, not a row each in Python. Lag is an event's wait from being
received to being processed (mapped and its changes queued or dropped); the wait for
Planhat after that is the backlog's age (``overview.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, func
from sqlalchemy import select as select_rows
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from state.db import session_scope
from state.tables import InboxEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    start: datetime
    received: int
    processed: int
    lag_avg: float | None  # seconds, over the bucket's processed events (None: none)
    lag_max: float | None


def series(
    engine: Engine, connection: str, *, now: datetime, span: timedelta, buckets: int = 30
) -> list[Bucket]:
    """``buckets`` equal slices of the ``span`` before ``now``, oldest first, empty ones too."""
    width = span.total_seconds() / buckets
    start = now - span
    with session_scope(engine) as session:
        seconds = _epoch(engine, col(InboxEvent.received_at))
        lag = _epoch(engine, col(InboxEvent.processed_at)) - seconds
        slot = func.floor((seconds - start.timestamp()) / width)
        processed = case((col(InboxEvent.processed_at).is_not(None), 1), else_=0)
        rows = session.execute(
            select_rows(slot, func.count(), func.sum(processed), func.avg(lag), func.max(lag))
            .where(col(InboxEvent.connection) == connection, col(InboxEvent.received_at) >= start)
            .group_by(slot)
        ).all()
    found = {int(row[0]): row for row in rows if row[0] is not None}
    result = []
    for index in range(buckets):
        row = found.get(index)
        result.append(
            Bucket(
                start=start + timedelta(seconds=index * width),
                received=int(row[1]) if row else 0,
                processed=int(row[2] or 0) if row else 0,
                lag_avg=float(row[3]) if row and row[3] is not None else None,
                lag_max=float(row[4]) if row and row[4] is not None else None,
            )
        )
    return result


def _epoch(engine: Engine, column: Any) -> ColumnElement[Any]:
    """Seconds since 1970 of a stored time, in the database's own terms."""
    if engine.dialect.name == "sqlite":
        return (func.julianday(column) - 2440587.5) * 86400.0
    return func.extract("epoch", column)
