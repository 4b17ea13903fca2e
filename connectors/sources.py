"""The source registry: how each source's stored events become ``Change``s.

Adding a source is adding a package under ``connectors/`` and one line in ``SOURCES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from connectors import standard, stripe
from connectors.change import Change, MappingError
from connectors.webhooks import SignatureError

__all__ = ["SOURCES", "MappingError", "SignatureError", "Source"]


class Source(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def secret_env(self) -> str:
        """The environment variable holding the ``default`` connection's secret."""
        ...

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        """Check the signature over the raw ``body``; return the source's event id.
        Raises ``SignatureError`` (constant-time comparisons only)."""
        ...

    def changes(self, body: bytes, event_id: str) -> list[Change]:
        """The changes a stored event stands for (pure: no I/O)."""
        ...


SOURCES: dict[str, Source] = {
    standard.SOURCE.name: standard.SOURCE,
    stripe.SOURCE.name: stripe.SOURCE,
}
