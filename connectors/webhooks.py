"""What every webhook source shares: the verification error, header access, and reading
what an attacker may have written (a body, a timestamp) without crashing on it."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

# Real events nest far less (a Stripe event about 8 levels); code that walks a document
# recursively (json.dumps of its fields, the mappings) is safe far below this.
MAX_DEPTH = 64
# A Unix time in seconds has 10 digits until the year 2286; more cannot be a time.
MAX_TIME_DIGITS = 12
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class SignatureError(ValueError):
    """The request is not from who it claims (bad, missing or expired signature)."""


class BodyError(ValueError):
    """A body that is not a JSON document we read; the message says why."""


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value, or SignatureError naming it (headers are matched case-blind)."""
    value = headers.get(name) or headers.get(name.lower())
    if not value:
        raise SignatureError(f"missing {name} header")
    return value


def unix_time(value: str, what: str) -> int:
    """``value`` as whole seconds since the epoch: plain ASCII digits only. ``int()`` alone
    takes "1_0", " 10" and other scripts' digits, and a 400-digit number that then
    overflows a float when compared with the clock."""
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_TIME_DIGITS):
        raise SignatureError(f"{what} is not a Unix time")
    return int(value)


def load_json(body: bytes) -> Any:
    """``json.loads`` for bytes an attacker wrote: ``BodyError`` (a ``ValueError``) for
    anything that is not a JSON document nested at most ``MAX_DEPTH`` deep.

    json.loads recurses once per level and raises RecursionError, which is not a
    ValueError, past about 1,000 levels. What cannot be sent on to Planhat is refused too
    (RFC 8259: UTF-8 only, section 8.1; no NaN or Infinity, nor a number too large for a
    float, section 6; RFC 7493: no half of a UTF-16 surrogate pair, which json.loads
    accepts and no UTF-8 encoder does)."""
    try:
        text = body.decode("utf-8")
        document = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise BodyError(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, _no_constant's
        raise BodyError(f"the body is not JSON: {error}") from None
    if _deeper_than(document, MAX_DEPTH, body):
        raise BodyError(f"the body is nested more than {MAX_DEPTH} levels deep")
    if _SURROGATE_ESCAPE.search(text) and not _all_unicode(document):
        raise BodyError("the body is not JSON: a string holds half of a surrogate pair")
    return document


def signed_document(body: bytes, what: str) -> Any:
    """The JSON document of a body whose signature holds; SignatureError saying why not."""
    try:
        return load_json(body)
    except BodyError as error:
        raise SignatureError(f"a signed body that is not {what}: {error}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:32]} is too large")
    return value


def _deeper_than(document: Any, limit: int, body: bytes) -> bool:
    # Each level opens with a "[" or "{" byte: fewer of those than the limit, and no walk is
    # needed (most events).
    if body.count(b"[") + body.count(b"{") <= limit or not isinstance(document, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _all_unicode(document: Any) -> bool:
    try:
        for text in _strings(document):
            text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _strings(document: Any) -> Iterator[str]:
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            yield from node.keys()
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
