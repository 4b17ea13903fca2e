"""structlog set-up: lines on stderr, context bound through contextvars.

Below debug, a log line carries ids, models, keys, counts and reasons, never record
values: e-mail addresses in any value are masked, and an exception is one line (its type
and first line) instead of a traceback, whose frames would print the records they held.
``PLANHAT_SYNC_LOG_LEVEL=debug`` shows everything, tracebacks included.

``PLANHAT_SYNC_LOG_FORMAT``: ``console`` (default; key=value lines for people) or ``json``
(one JSON object a line, for a log shipper). Every line written while an event is handled
carries its ``event_id``, ``inbox_id``, ``connection`` and ``source`` (bound by ingest).
Other libraries' lines (Celery's, uvicorn's) go through the same renderer once
``route_stdlib`` is called (the Celery worker does, in place of Celery's own logging).
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


FORMATS = ("console", "json")
FORMAT_SETTING = "PLANHAT_SYNC_LOG_FORMAT"


def check_format(log_format: str) -> str:
    """``log_format`` if it is one of ``FORMATS``; else the process stops here, at start,
    with one line naming the setting and what it accepts (exit status 2)."""
    if log_format not in FORMATS:
        print(
            f"error: {FORMAT_SETTING}={log_format[:40]!r} is not a log format; "
            f"accepted: {', '.join(FORMATS)}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return log_format


def _renderer(log_format: str, debug: bool) -> list[Any]:
    if log_format == "json":
        # A traceback (debug only) becomes a string field: still one line.
        return [
            *((structlog.processors.format_exc_info,) if debug else ()),
            structlog.processors.JSONRenderer(),
        ]
    plain = structlog.dev.plain_traceback
    return [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=plain)]


def _shared(debug: bool) -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        *(() if debug else (_private,)),
    ]


def configure(level: str = "warning", log_format: str = "console") -> None:
    debug = level.lower() == "debug"
    check_format(log_format)
    structlog.configure(
        processors=[*_shared(debug), *_renderer(log_format, debug)],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
        ),
        # sys.stderr is looked up per logger, not kept: a stream swapped out since (a test
        # runner's capture) must not be written to after it is closed.
        logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )


def route_stdlib(level: str | int, log_format: str = "console") -> None:
    """Render the logging module's records (Celery's, uvicorn's) as ours are, on
    stderr, at ``level`` and above: the root logger gets this one handler."""
    debug = str(level).lower() == "debug" or level == logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_shared(debug)],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *_renderer(check_format(log_format), debug),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
