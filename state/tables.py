"""The local state store's tables (SQLModel). Migrations: ``state/migrations``.

Times are aware UTC (``utcnow()``); SQLModel's UTCDateTime stores them so on PostgreSQL and
gives them back aware from SQLite too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    LargeBinary,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Connection(SQLModel, table=True):
    """A Planhat tenant and the sources that feed it."""

    __tablename__ = "connection"

    name: str = Field(primary_key=True, max_length=64)
    planhat_base_url: str
    # Encrypted at rest; None: the token comes from the environment (PLANHAT_API_TOKEN).
    planhat_token: str | None = None
    secrets: str | None = None  # encrypted JSON: {source: secret}
    # Mapping options, {"<source>.<option>": value}: not secret, plain.
    options: dict[str, str] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class InboxEvent(SQLModel, table=True):
    """A verified event exactly as received. Committed before the sender hears 2xx."""

    __tablename__ = "inbox_event"
    __table_args__ = (
        UniqueConstraint("connection", "source", "event_id", name="uq_inbox_event_source_id"),
        Index("ix_inbox_event_due", "status", "next_attempt_at"),
        Index("ix_inbox_event_received", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    connection: str = Field(max_length=64)
    source: str = Field(max_length=32)
    event_id: str = Field(max_length=255)  # the source's id: dedup key
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # For a thin event (a callback naming a record): what the worker fetched from the source's
    # API to complete it; mapped instead of the body, so a replay reads the same thing.
    detail: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    received_at: datetime = Field(default_factory=utcnow)
    status: str = Field(default="pending", max_length=16)  # pending|done|ignored|failed
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    # When a task for it was last sent to the broker: the sweeper resends rows whose task
    # has been gone too long (worker killed, Redis flushed).
    dispatched_at: datetime | None = None
    error: str | None = None
    processed_at: datetime | None = None
    # Of its changes, those dropped as older than the version already pushed (logged as
    # change.stale): summed by connection and source, what a status page shows.
    stale_changes: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class RecordState(SQLModel, table=True):
    """What Planhat holds for one record, as far as we pushed it."""

    __tablename__ = "record_state"

    connection: str = Field(primary_key=True, max_length=64)
    model: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=512)
    planhat_id: str | None = Field(default=None, max_length=64)
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    fields_hash: str = Field(max_length=64)
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
    origin: str = Field(default="source", max_length=16)
    pushed_at: datetime = Field(default_factory=utcnow)


class OutboxItem(SQLModel, table=True):
    """One pending write per record: later changes overwrite earlier ones (coalescing)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "connection", "model", "next_attempt_at"),)

    connection: str = Field(primary_key=True, max_length=64)
    model: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=512)
    key_field: str = Field(max_length=32)
    key_value: str = Field(max_length=255)
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The version each field's value comes from: coalescing is last-writer-wins per field,
    # so changes merge to the same row whatever order they arrive in.
    field_versions: dict[str, int] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Bumped by every coalesced change: a flush only deletes the revision it sent.
    revision: int = 1
    event_id: str | None = Field(default=None, max_length=255)
    inbox_id: int | None = None
    enqueued_at: datetime = Field(default_factory=utcnow)
    # When a change last landed in this row: a flush waits for a quiet moment, so a burst
    # of changes goes out as full batches rather than a trickle of small ones.
    changed_at: datetime = Field(
        default_factory=utcnow, sa_column_kwargs={"server_default": func.current_timestamp()}
    )
    next_attempt_at: datetime = Field(default_factory=utcnow)
    attempts: int = 0
    claimed_until: datetime | None = None  # a flush holds the row until then
    last_error: str | None = None


class DeadLetter(SQLModel, table=True):
    """A write that failed for good, with the reason; replayable."""

    __tablename__ = "dead_letter"
    __table_args__ = (Index("ix_dead_letter_record", "connection", "model", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    connection: str = Field(max_length=64)
    model: str = Field(max_length=32)
    key: str = Field(max_length=512)
    key_field: str = Field(max_length=32)
    key_value: str = Field(max_length=255)
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str
    attempts: int = 0
    event_id: str | None = Field(default=None, max_length=255)
    inbox_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    # A write back to a source (None: a write to Planhat): that source, and the Planhat
    # record the change was made on; ``key`` is then the link's.
    target: str | None = Field(default=None, max_length=32)
    planhat_id: str | None = Field(default=None, max_length=64)
    # The record was quarantined for flapping (its link): ``dlq retry`` releases it.
    quarantine: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class Cursor(SQLModel, table=True):
    """A poller's position in one feed of a source (``Feed.cursor_name``)."""

    __tablename__ = "cursor"

    connection: str = Field(primary_key=True, max_length=64)
    source: str = Field(primary_key=True, max_length=32)
    position: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


class Link(SQLModel, table=True):
    """A record of a source and the Planhat record it is, with the last hash of its synced
    fields written to and read from each side, and when (``worker/pipeline/links.py``)."""

    __tablename__ = "link"
    __table_args__ = (Index("ix_link_planhat_id", "connection", "model", "planhat_id"),)

    connection: str = Field(primary_key=True, max_length=64)
    model: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=512)  # as in record_state: "sourceId=t-1"
    source: str = Field(default="", max_length=32)  # whose record it is ("": not known)
    key_field: str = Field(max_length=32)
    key_value: str = Field(max_length=255)
    planhat_id: str | None = Field(default=None, max_length=64)
    # The synced fields as Planhat last had them, as far as we know (written or read).
    planhat_fields: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    planhat_written_hash: str | None = Field(default=None, max_length=64)
    planhat_written_at: datetime | None = None
    planhat_read_hash: str | None = Field(default=None, max_length=64)
    planhat_read_at: datetime | None = None
    source_written_hash: str | None = Field(default=None, max_length=64)
    source_written_at: datetime | None = None
    source_read_hash: str | None = Field(default=None, max_length=64)
    source_read_at: datetime | None = None
    # Deleted in Planhat: a tombstone. Nothing re-creates it but the source creating it.
    deleted_at: datetime | None = None
    # The flapping guard: which way the last write went ("planhat", "source"), how many
    # times the direction turned since ``bounced_since``, and when it was quarantined.
    # Ownership and conflicts (worker/pipeline/conflicts.py): when Planhat last won each
    # shared field (its updatedAt, µs), and owned values to restore at the next change,
    # in Planhat (the source's) and at the source (Planhat's). None: none.
    field_times: dict[str, int] | None = Field(default=None, sa_column=Column(JSON))
    owed_planhat: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    owed_source: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    last_written_to: str | None = Field(default=None, max_length=16)
    bounces: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    bounced_since: datetime | None = None
    quarantined_at: datetime | None = None


class WriteBackItem(SQLModel, table=True):
    """One pending write back to a source per record: a change made in Planhat, later ones
    merged in (coalescing), until the source has it (``worker/pipeline/write_back.py``)."""

    __tablename__ = "write_back"
    __table_args__ = (Index("ix_write_back_due", "connection", "next_attempt_at"),)

    connection: str = Field(primary_key=True, max_length=64)
    source: str = Field(primary_key=True, max_length=32)
    model: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=512)  # the link's
    key_field: str = Field(max_length=32)
    key_value: str = Field(max_length=255)
    planhat_id: str = Field(max_length=64)
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    version: int = Field(sa_column=Column(BigInteger, nullable=False))  # Planhat's updatedAt
    deleted: bool = False
    revision: int = 1  # bumped by every merged change: a write only settles what it sent
    event_id: str | None = Field(default=None, max_length=255)
    inbox_id: int | None = None
    enqueued_at: datetime = Field(default_factory=utcnow)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    attempts: int = 0
    claimed_until: datetime | None = None
    last_error: str | None = None
