"""What every webhook source shares: the verification error and header access."""

from __future__ import annotations

from collections.abc import Mapping


class SignatureError(ValueError):
    """The request is not from who it claims (bad, missing or expired signature)."""


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value, or SignatureError naming it (headers are matched case-blind)."""
    value = headers.get(name) or headers.get(name.lower())
    if not value:
        raise SignatureError(f"missing {name} header")
    return value
