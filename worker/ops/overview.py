"""What each connection is doing, from the state store (and the rate limiter): the numbers
the status page and ``planhat-sync status`` both show, computed in one place.

"Applied" is an event mapped to at least one change (``done``), "ignored" one that mapped
to none, "dead" a dead letter created in the window. The backlog is what still waits:
pending events, outbox rows (changes for Planhat) and write-back rows; its age is the
oldest of them, counted from when it was received or queued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from state.db import session_scope
from state.tables import Cursor, DeadLetter, InboxEvent, OutboxItem, RecordState, WriteBackItem
from worker.runtime.ratelimit import BudgetUse

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    received: int
    applied: int
    ignored: int
    dead: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CursorAge:
    feed: str  # the cursor's name: its source, or the source and feed
    position: str
    age: float  # seconds since it last moved


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenState:
    """Whether the connection can write to Planhat: a problem when it cannot."""

    budget_key: str | None  # the limiter's name for its token (None: no token to look at)
    problem: str | None = None  # "no Planhat token", "its secrets cannot be opened: ..."


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOverview:
    name: str
    last_hour: Counts
    last_day: Counts
    pending_events: int
    pending_changes: int  # outbox rows: writes to Planhat waiting
    pending_write_backs: int  # changes made in Planhat waiting for their source
    oldest_pending: float | None  # seconds the oldest of them has waited (None: none)
    last_flush: datetime | None  # the last record Planhat confirmed
    dead_letters: int  # every dead letter not yet retried or dropped
    cursors: tuple[CursorAge, ...]
    token_problem: str | None
    budget: BudgetUse | None  # None: the limiter could not be read

    @property
    def backlog(self) -> int:
        return self.pending_events + self.pending_changes + self.pending_write_backs


def overview(
    engine: Engine,
    names: Iterable[str],
    *,
    token_of: Callable[[str], TokenState],
    budget_of: Callable[[str], BudgetUse | None],
    now: datetime,
) -> list[ConnectionOverview]:
    """One overview per connection named, in name order."""
    # Tokens first, in no transaction of ours: reading a connection may open one of its
    # own, and SQLite's write lock is taken in turn (state/db.py): nested, it would wait.
    tokens = {name: token_of(name) for name in sorted(set(names))}
    budgets = {
        name: budget_of(t.budget_key) if t.budget_key else None for name, t in tokens.items()
    }
    with session_scope(engine) as session:
        return [_one(session, name, tokens[name], budgets[name], now) for name in tokens]


def active_connections(engine: Engine, configured: Iterable[str]) -> list[str]:
    """The connections worth showing: every stored one, and ``default`` (always
    configured) only when something was received or waits for it."""
    names = set(configured)
    with session_scope(engine) as session:
        seen = set(session.exec(select(InboxEvent.connection).distinct()))
        seen |= set(session.exec(select(OutboxItem.connection).distinct()))
        seen |= set(session.exec(select(DeadLetter.connection).distinct()))
    if "default" not in seen:
        names.discard("default")
    return sorted(names | seen)


def _one(
    session: Session, name: str, token: TokenState, budget: BudgetUse | None, now: datetime
) -> ConnectionOverview:
    events = select(func.count()).select_from(InboxEvent).where(InboxEvent.connection == name)
    pending_events = session.exec(events.where(InboxEvent.status == "pending")).one()
    oldest = [
        session.exec(
            select(func.min(InboxEvent.received_at)).where(
                InboxEvent.connection == name, InboxEvent.status == "pending"
            )
        ).one(),
        session.exec(
            select(func.min(OutboxItem.enqueued_at)).where(OutboxItem.connection == name)
        ).one(),
        session.exec(
            select(func.min(WriteBackItem.enqueued_at)).where(WriteBackItem.connection == name)
        ).one(),
    ]
    waiting = [when for when in oldest if when is not None]
    cursors = session.exec(select(Cursor).where(Cursor.connection == name))
    return ConnectionOverview(
        name=name,
        last_hour=_counts(session, name, now - HOUR),
        last_day=_counts(session, name, now - DAY),
        pending_events=pending_events,
        pending_changes=_count(session, OutboxItem, name),
        pending_write_backs=_count(session, WriteBackItem, name),
        oldest_pending=(now - min(waiting)).total_seconds() if waiting else None,
        last_flush=session.exec(
            select(func.max(RecordState.pushed_at)).where(RecordState.connection == name)
        ).one(),
        dead_letters=_count(session, DeadLetter, name),
        cursors=tuple(
            CursorAge(
                feed=cursor.source,
                position=cursor.position,
                age=(now - cursor.updated_at).total_seconds(),
            )
            for cursor in cursors
        ),
        token_problem=token.problem,
        budget=budget,
    )


def _count(
    session: Session, table: type[OutboxItem] | type[WriteBackItem] | type[DeadLetter], name: str
) -> int:
    query = select(func.count()).select_from(table).where(col(table.connection) == name)
    return session.exec(query).one()


def _counts(session: Session, name: str, since: datetime) -> Counts:
    by_status = dict(
        session.exec(
            select(InboxEvent.status, func.count())
            .where(InboxEvent.connection == name, InboxEvent.received_at >= since)
            .group_by(col(InboxEvent.status))
        ).all()
    )
    dead = session.exec(
        select(func.count())
        .select_from(DeadLetter)
        .where(DeadLetter.connection == name, DeadLetter.created_at >= since)
    ).one()
    return Counts(
        received=sum(by_status.values()),
        applied=by_status.get("done", 0),
        ignored=by_status.get("ignored", 0),
        dead=dead,
    )
