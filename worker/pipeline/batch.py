"""The values a flush works with: its policy, its report, and a claimed outbox row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.planhat.errors import RATE_LIMIT_GUESS_CAP
from connectors.planhat.retry import equal_jitter


@dataclass(frozen=True, slots=True, kw_only=True)
class FlushPolicy:
    batch_size: int = 500  # records per Planhat call (at most 5,000)
    lease: float = 120.0  # seconds a flush holds its rows before others may take them
    max_attempts: int = 8  # failed sends before a record becomes a dead letter
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    parent_wait_attempts: int = 5  # rejected tries while the record's company is unknown
    max_budget_wait: float = 30.0  # longer waits for rate budget reschedule instead
    # The longest shared pause guessed after 429s that give no time (Planhat's window
    # resets after 60-120 s: planhat/docs source/includes/_intro.md).
    rate_limit_guess_cap: float = RATE_LIMIT_GUESS_CAP
    # The flapping guard: a record whose writes turn direction (to Planhat, back to its
    # source) more than this many times within flap_minutes is quarantined.
    flap_bounces: int = 6
    flap_minutes: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 5000:
            raise ValueError("batch_size must be between 1 and 5000")

    def backoff(self, attempts: int, jitter: Callable[[float], float] = equal_jitter) -> float:
        return jitter(min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempts - 1)))


@dataclass(slots=True)
class FlushReport:
    model: str
    sent: int = 0  # records in the Planhat call
    written: int = 0  # confirmed by Planhat
    dead: int = 0  # became dead letters
    dropped: int = 0  # stale or unchanged since queued: no call
    deferred: int = 0  # waiting for a parent, for budget, or backing off
    calls: int = 0
    deleted: int = 0  # records deleted in Planhat (or found already gone)
    delete_calls: int = 0  # of ``calls``: Planhat's single deletes, one per record
    retry_in: float | None = None  # flush again after this many seconds
    full: bool = False  # the batch was full: there may be more now
    # Rate limited, out of budget or resting (configuration): the connection's other
    # models wait too (an NPS must never be linked while its company waits for budget).
    stopped: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Claimed:
    key: str
    key_field: str
    revision: int
    record: dict[str, Any]  # what is sent: key field + fields
    fields: dict[str, Any]
    version: int
    attempts: int
    # A deletion row (worker/pipeline/deletions.py): how Planhat names the record; None
    # when Planhat never had it (nothing to call)
    planhat_id: str | None = None
