"""Planhat errors, grouped by what the caller must do.

    PlanhatError
    ├── RateLimitedError       429: wait ``retry_after`` seconds (``guessed`` when Planhat
    │                          gave no time); not a failure, not an attempt
    ├── RetryableError         5xx, timeouts, connection errors: back off and try again
    ├── RejectedError          4xx on the request itself: fix the data, retrying won't help
    │   └── NotFoundError      404: no such record (or no such route)
    └── FatalError             401/403 (token, region, permissions), 3xx: configuration

Errors carry the HTTP method and URL, never headers: the token must not leak into logs.
Planhat's error bodies are not documented (planhat-api.md), so ``message`` is the body's
``message``/``error`` field when it is JSON, and its text otherwise.
"""

from __future__ import annotations

import json
import math
import time
from email.utils import parsedate_to_datetime

import httpx

# A 429 is not guaranteed a Retry-After (not documented). Planhat's quota is 200 calls a
# minute (https://docs.planhat.com), and its older docs say the limit "is reset every 60-120
# seconds" (planhat/docs source/includes/_intro.md). Without a header that says when, the
# wait is a guess: this long first, doubled at each 429 in a row up to
# RATE_LIMIT_GUESS_CAP, the longest window (connectors/planhat/retry.py). 15 s first is
# assumed: short enough for a burst limit, and four tries reach a 120 s window.
DEFAULT_RATE_LIMIT_WAIT = 15.0
RATE_LIMIT_GUESS_CAP = 120.0
# X-Rate-Limit-Reset is not documented by Planhat either: a value this large is a Unix time
# (as Twitter's X-Rate-Limit-Reset is), a smaller one seconds from now (assumed).
_EPOCH_THRESHOLD = 1_000_000_000

REGION_HINT = (
    "A token used against the wrong region also gets 401: check PLANHAT_BASE_URL "
    "(https://api.planhat.com, or api-eu, api-eu2, api-eu3, api-us2.planhat.com)."
)


class PlanhatError(Exception):
    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url
        self.status_code = status_code

    def __str__(self) -> str:
        where = f" ({self.method} {self.url})" if self.method else ""
        status = f"{self.status_code}: " if self.status_code is not None else ""
        return f"{status}{self.message}{where}"


class RateLimitedError(PlanhatError):
    """``retry_after``: seconds to wait. ``guessed``: Planhat said nothing about when
    (no Retry-After, no X-Rate-Limit-Reset), so the wait is a guess to grow on the next
    429 rather than a time to trust."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float = DEFAULT_RATE_LIMIT_WAIT,
        guessed: bool = False,
        method: str = "",
        url: str = "",
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url, status_code=status_code)
        self.retry_after = retry_after
        self.guessed = guessed


class RetryableError(PlanhatError):
    pass


class RejectedError(PlanhatError):
    pass


class NotFoundError(RejectedError):
    pass


class FatalError(PlanhatError):
    pass


def response_message(response: httpx.Response) -> str:
    """The human part of an error body, JSON or text."""
    text = response.text.strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "error", "errors"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else json.dumps(value)
    return text


def rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds to wait after a 429 when the answer says: ``Retry-After`` (seconds or an
    HTTP date, RFC 9110), else ``X-Rate-Limit-Reset``; None when it says nothing."""
    now = _server_time(response)
    value = response.headers.get("Retry-After", "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None and now is not None:
            return max(0.0, math.ceil(when.timestamp() - now))
    value = response.headers.get("X-Rate-Limit-Reset", "").strip()
    try:
        reset = float(value)
    except ValueError:
        return None
    if reset >= _EPOCH_THRESHOLD:
        if now is None:
            return None
        reset -= now
    return max(0.0, math.ceil(reset))


def _server_time(response: httpx.Response) -> float | None:
    """The answer's ``Date`` as a Unix time, else this machine's clock."""
    date = response.headers.get("Date")
    if date:
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


def error_for_response(response: httpx.Response) -> PlanhatError | None:
    """Map a response to the error the caller must handle, or None for a success.

    206 is a success here: a partial bulk upsert reports its failures per record.
    """
    status = response.status_code
    if status < 300:
        return None
    message = response_message(response)

    def make(cls: type[PlanhatError], text: str) -> PlanhatError:
        return cls(
            text,
            method=response.request.method,
            url=str(response.request.url),
            status_code=status,
        )

    if status < 400:
        # The client follows no redirects: one that would move the token elsewhere is a
        # configuration problem (http vs https, an old host), not something to retry.
        location = response.headers.get("Location", "?")
        return make(FatalError, f"Planhat redirected to {location}; check PLANHAT_BASE_URL")
    if status == 429:
        wait = rate_limit_wait(response)
        return RateLimitedError(
            message or "Too many requests",
            retry_after=DEFAULT_RATE_LIMIT_WAIT if wait is None else wait,
            guessed=wait is None,
            method=response.request.method,
            url=str(response.request.url),
            status_code=status,
        )
    if status == 401:
        return make(FatalError, f"Planhat refused the token: {message}. {REGION_HINT}")
    if status == 403:
        return make(FatalError, f"Planhat denied permission: {message}")
    if status == 404:
        return make(NotFoundError, message or "not found")
    if status in (408, 409, 423, 425) or status >= 500:
        return make(RetryableError, message or response.reason_phrase)
    return make(RejectedError, message or response.reason_phrase)
