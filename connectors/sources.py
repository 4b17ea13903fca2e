"""The source registry: the one place that names every source.

Adding a source is adding a package under ``connectors/`` and one line in ``SOURCES``; the
worker discovers what each can do from the object itself (``connectors/source.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors import (
    chargebee,
    intercom,
    planhat_source,
    standard,
    stripe,
    surveymonkey,
    typeform,
    zendesk,
)
from connectors.change import MappingError
from connectors.custom_fields.rules import RuleError, check_rules
from connectors.options import OptionError, for_source
from connectors.source import HasApi, Source
from connectors.webhooks import SignatureError

__all__ = [
    "SOURCES",
    "MappingError",
    "OptionError",
    "SignatureError",
    "Source",
    "credentials_of",
    "source_options",
]

SOURCES: dict[str, Source] = {
    standard.SOURCE.name: standard.SOURCE,
    stripe.SOURCE.name: stripe.SOURCE,
    chargebee.SOURCE.name: chargebee.SOURCE,
    typeform.SOURCE.name: typeform.SOURCE,
    surveymonkey.SOURCE.name: surveymonkey.SOURCE,
    planhat_source.SOURCE.name: planhat_source.SOURCE,
    zendesk.SOURCE.name: zendesk.SOURCE,
    intercom.SOURCE.name: intercom.SOURCE,
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
    try:
        check_rules(given, SOURCES)
    except RuleError as error:
        raise OptionError(str(error)) from None


def credentials_of(source: Source, secrets: Mapping[str, str]) -> dict[str, str]:
    """``source``'s API credentials among a connection's secrets (``stripe:api_key``)."""
    prefix = f"{source.name}:"
    return {key[len(prefix) :]: value for key, value in secrets.items() if key.startswith(prefix)}


def check_secret_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a source (its webhook secret) or one of its
    credentials (``source:credential``)."""
    source_name, sep, credential = name.partition(":")
    source = SOURCES.get(source_name)
    if source is None:
        raise ValueError(f"unknown source {source_name!r} (known: {', '.join(SOURCES)})")
    if not sep:
        return
    known = [c.name for c in source.credentials] if isinstance(source, HasApi) else []
    if credential not in known:
        raise ValueError(
            f"{source_name} has no credential {credential!r} (it has: {', '.join(known) or 'none'})"
        )


def env_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``default`` connection's secrets from the environment: each source's webhook
    secret, and its credentials as ``<SOURCE>_<NAME>`` (``STRIPE_API_KEY``)."""
    secrets: dict[str, str] = {}
    for source in SOURCES.values():
        if value := source.env_secret(environ):
            secrets[source.name] = value
        if not isinstance(source, HasApi):
            continue
        for credential in source.credentials:
            found = next(
                (environ[n] for n in credential.env_names(source.name) if environ.get(n)), None
            )
            if found:
                secrets[f"{source.name}:{credential.name}"] = found
    return secrets


def env_api_bases(environ: Mapping[str, str]) -> dict[str, str]:
    """``<SOURCE>_API_BASE`` overrides (a local fake in tests) for sources with an API."""
    return {
        source.name: value
        for source in SOURCES.values()
        if isinstance(source, HasApi) and (value := environ.get(f"{source.name}_API_BASE".upper()))
    }
