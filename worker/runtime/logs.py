"""structlog set-up: key-value lines on stderr, context bound through contextvars."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "warning") -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
        ),
        # sys.stderr is looked up per logger, not kept: a stream swapped out since (a test
        # runner's capture) must not be written to after it is closed.
        logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
