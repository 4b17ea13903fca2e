"""The sandbox's refusals: a status and a message (texts assumed: Planhat documents
neither), and Skip for a record Planhat drops without a word."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SandboxError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Skip(Exception):
    """Not an error: Planhat drops the record without a word."""


def present(doc: Mapping[str, Any], field: str) -> bool:
    """Whether ``field`` holds a value (not missing, None, "" or [])."""
    return doc.get(field) not in (None, "", [])
