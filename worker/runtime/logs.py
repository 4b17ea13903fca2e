"""structlog set-up: key-value lines on stderr, context bound through contextvars.

Below debug, a log line carries ids, models, keys, counts and reasons, never record
values: e-mail addresses in any value are masked, and an exception is one line (its type
and first line) instead of a traceback, whose frames would print the records they held.
``PLANHAT_SYNC_LOG_LEVEL=debug`` shows everything, tracebacks included.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

EMAIL = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+\.[A-Za-z]{2,}")
MAX_VALUE = 300  # characters of one logged value (an error message quoting a payload)


def describe(error: BaseException) -> str:
    """One line for a log: the error's type and the first line of its message."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _private(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    exc_info = event.pop("exc_info", None)
    if exc_info:
        error = sys.exc_info()[1] if exc_info is True else exc_info
        if isinstance(error, tuple):
            error = error[1]
        if isinstance(error, BaseException):
            event.setdefault("error", describe(error))
    for key, value in event.items():
        if isinstance(value, str) and key != "event":
            value = EMAIL.sub("<e-mail>", value)
            event[key] = value if len(value) <= MAX_VALUE else value[:MAX_VALUE] + "…"
    return event


def configure(level: str = "warning") -> None:
    debug = level.lower() == "debug"
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            *(() if debug else (_private,)),
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            ),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
        ),
        # sys.stderr is looked up per logger, not kept: a stream swapped out since (a test
        # runner's capture) must not be written to after it is closed.
        logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
