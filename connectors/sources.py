"""The source registry: how each source's stored events become ``Change``s.

Adding a source is adding a package under ``connectors/`` and one line in ``SOURCES``.
"""

from __future__ import annotations

from typing import Protocol

from connectors import standard
from connectors.change import Change, MappingError

__all__ = ["SOURCES", "MappingError", "Source"]


class Source(Protocol):
    @property
    def name(self) -> str: ...

    def changes(self, body: bytes, event_id: str) -> list[Change]:
        """The changes a stored event stands for (pure: no I/O)."""
        ...


SOURCES: dict[str, Source] = {
    standard.SOURCE.name: standard.SOURCE,
}
