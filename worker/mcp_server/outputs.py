"""The tools' structured output: each a Pydantic model, so its JSON Schema is the tool's
``outputSchema`` and what a tool returns is validated against it before it is sent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from worker.ops.overview import ConnectionOverview
from worker.ops.story import Story

Record = dict[str, Any]


class RecordPage(BaseModel):
    model: str
    offset: int
    limit: int
    count: int = Field(description="records on this page")
    next_offset: int | None = Field(description="the offset of the next page; null: last page")
    records: list[Record]


class RecordAnswer(BaseModel):
    model: str
    id: str | None = Field(description="the record's Planhat _id")
    record: Record


class FieldChange(BaseModel):
    field: str = Field(description="the field; custom.<name> for a custom field")
    before: Any = Field(default=None, description="what Planhat holds now (null: not set)")
    after: Any = Field(default=None, description="what the write sets")
    new: bool = Field(description="true: Planhat has no value for this field yet")


class WriteAnswer(BaseModel):
    model: str
    operation: str = Field(description="create, update or delete")
    target: str | None = Field(description="the id written to; null for a create")
    dry_run: bool
    written: bool = Field(description="true: Planhat was changed")
    changes: list[FieldChange] = Field(
        description="the diff against what Planhat holds now (planned, on a dry run)"
    )
    unchanged: list[str] = Field(description="fields given that already hold these values")
    record: Record | None = Field(description="Planhat's record: now (dry run) or as written")
    message: str


class BulkItem(BaseModel):
    index: int
    key: str | None = Field(description="the keyable it is matched on, as field=value")
    outcome: str = Field(description="planned, created, updated, unchanged, rejected, ...")
    id: str | None = Field(default=None, description="its Planhat _id, when known")
    message: str | None = None
    changes: list[FieldChange] = Field(default_factory=list)


class BulkAnswer(BaseModel):
    model: str
    dry_run: bool
    written: bool
    counts: dict[str, int]
    items: list[BulkItem]
    message: str


class SyncStatus(BaseModel):
    connections: list[ConnectionOverview]
    problems: list[str] = Field(description="one line per thing a person must look at")


class StoryAnswer(BaseModel):
    query: str
    stories: list[Story]
    note: str


class DeadLetterView(BaseModel):
    id: int
    connection: str
    model: str | None
    written_back_to: str | None
    quarantine: bool
    key: str
    attempts: int
    reason: str
    event_id: str | None
    created_at: str


class DeadLetters(BaseModel):
    letters: list[DeadLetterView]
    count: int


class SyncAction(BaseModel):
    """What a sync tool did, or would do on a dry run."""

    dry_run: bool
    done: bool
    message: str
    results: list[dict[str, Any]] = Field(default_factory=list)


def dead_letter_view(described: Mapping[str, Any]) -> DeadLetterView:
    return DeadLetterView.model_validate(dict(described))
