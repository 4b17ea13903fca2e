"""The source registry: how each source's stored events become ``Change``s.

Adding a source is adding a package under ``connectors/`` and one line in ``SOURCES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from connectors import chargebee, standard, stripe, surveymonkey, typeform
from connectors.change import Change, MappingError
from connectors.options import Option, OptionError, for_source
from connectors.webhooks import SignatureError

__all__ = ["SOURCES", "MappingError", "OptionError", "SignatureError", "Source", "source_options"]


class Source(Protocol):
    @property
    def name(self) -> str: ...

    def env_secret(self, environ: Mapping[str, str]) -> str | None:
        """The ``default`` connection's secret, from the environment (or None)."""
        ...

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
        """Check the signature over the raw ``body``; return the source's event id.
        Raises ``SignatureError`` (constant-time comparisons only)."""
        ...

    @property
    def needs_detail(self) -> bool:
        """Its events are thin: the worker completes each from the source's API before
        mapping, and ``changes`` reads that stored detail instead of the body."""
        ...

    @property
    def checks_on_receipt(self) -> bool:
        """The sender is the user (``standard``), so a bad body is answered 400 with the
        reason instead of being kept: the receiver maps it before answering. False for a
        third-party source: its verified events are all kept, and one that cannot be mapped
        becomes a dead letter with the reason in ingest, replayable after a fix."""
        ...

    @property
    def options(self) -> tuple[Option, ...]:
        """The mapping choices a connection may change (``<source>.<name>``)."""
        ...

    def changes(self, body: bytes, event_id: str, options: Mapping[str, str]) -> list[Change]:
        """The changes a stored event stands for (pure: no I/O). ``options`` holds every
        option of this source, checked, defaults filled (``source_options``)."""
        ...


SOURCES: dict[str, Source] = {
    standard.SOURCE.name: standard.SOURCE,
    stripe.SOURCE.name: stripe.SOURCE,
    chargebee.SOURCE.name: chargebee.SOURCE,
    typeform.SOURCE.name: typeform.SOURCE,
    surveymonkey.SOURCE.name: surveymonkey.SOURCE,
}


def source_options(source: Source, given: Mapping[str, str]) -> dict[str, str]:
    """``source``'s options out of a connection's flat options (``stripe.trials`` …)."""
    return for_source(source.name, source.options, given)


def check_options(given: Mapping[str, str]) -> None:
    """Raise ``OptionError`` unless every ``<source>.<option>`` names a known one, validly."""
    for key in given:
        name = key.partition(".")[0]
        if name not in SOURCES:
            raise OptionError(f"{key!r}: no source named {name!r} (known: {', '.join(SOURCES)})")
    for source in SOURCES.values():
        source_options(source, given)
