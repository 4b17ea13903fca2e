"""Fakes of our own seams, for tests that need one without its real service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class RecordingDispatcher:
    """A ``Dispatcher`` that only writes down what it was asked to do; its broker answers
    while ``broker_up``."""

    ingested: list[int] = field(default_factory=list)
    flushes: list[tuple[str, float]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    write_backs: list[tuple[str, float]] = field(default_factory=list)
    broker_up: bool = True

    def ingest(self, inbox_ids: Sequence[int]) -> None:
        self.ingested.extend(inbox_ids)

    async def ingest_async(self, inbox_ids: Sequence[int]) -> None:
        self.ingest(inbox_ids)

    def take_ingest_batch(self, size: int, slot: int = 0, release: bool = True) -> list[int]:
        taken, self.ingested[:size] = self.ingested[:size], []
        return taken

    async def ready(self) -> None:
        if not self.broker_up:
            raise ConnectionError("broker down")

    def flush(self, connection: str, delay: float) -> None:
        self.flushes.append((connection, delay))

    def flush_started(self, connection: str) -> None:
        self.started.append(connection)

    def write_back(self, connection: str, delay: float) -> None:
        self.write_backs.append((connection, delay))

    def write_back_started(self, connection: str) -> None:
        pass
