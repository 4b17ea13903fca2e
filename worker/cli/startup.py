"""What a command checks before it does anything: its settings, and the state store.

Long-running commands (``web``, ``worker``, ``beat``, ``dev``) read every setting and the
``default`` connection's mapping options at start (``checked_settings``): a bad one stops
the process with one line naming the variable and what it accepts, instead of a process
that runs and fails every webhook or flush. Commands that only look at what is stored
(``dlq``, ``replay``, ``prune``, ``connections list``, ``keys check``) open the database
only if it exists (``existing_database``): an empty one they made would answer "no dead
letters" about a database they never saw.
"""

from __future__ import annotations

import os
from typing import NoReturn, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from connectors.options import OptionError
from state.db import make_engine, session_scope
from state.location import DATA_DIR_ENV, missing_database
from state.tables import Connection
from worker.runtime import logs
from worker.runtime.settings import (
    EngineSettings,
    MissingTokenError,
    Settings,
    WebSettings,
    env_options,
)

# Each settings class and the prefix of its variables (they name fields without it).
PREFIXES: dict[type[BaseSettings], str] = {
    Settings: "",
    EngineSettings: "PLANHAT_SYNC_",
    WebSettings: "PLANHAT_SYNC_WEB_",
}
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def checked_settings(*, web: bool = False) -> Settings:
    """Every setting a long-running process reads, checked now; logging configured."""
    settings: Settings = _read(Settings)
    _read(EngineSettings)
    if web:
        _read(WebSettings)
    level = settings.planhat_sync_log_level
    if level.lower() not in LOG_LEVELS:
        fail(f"PLANHAT_SYNC_LOG_LEVEL={level!r} is not a level: one of {', '.join(LOG_LEVELS)}")
    try:
        env_options()
    except OptionError as error:
        fail(str(error))
    log_format = settings.planhat_sync_log_format
    if log_format not in logs.FORMATS:
        fail(f"{logs.FORMAT_SETTING}={log_format[:40]!r} is not a log format; "
             f"accepted: {', '.join(logs.FORMATS)}")  # fmt: skip
    logs.configure(settings.planhat_sync_log_level, log_format)
    return settings


S = TypeVar("S", bound=BaseSettings)


def _read(kind: type[S]) -> S:
    try:
        return kind()
    except ValidationError as error:
        fail(setting_problem(error, PREFIXES[kind], show_value=kind is not Settings))


def setting_problem(error: ValidationError, prefix: str, *, show_value: bool = True) -> str:
    """``PLANHAT_SYNC_BATCH_SIZE='lots': Input should be a valid integer``: the variable,
    what it holds (not for Settings, which holds the token), and what it accepts."""
    first = error.errors()[0]
    name = prefix + "_".join(str(part) for part in first["loc"]).upper()
    value = f"={first['input']!r}" if show_value and "input" in first else ""
    return f"{name}{value}: {first['msg']}"


def existing_database(settings: Settings) -> str:
    """The database URL of a command that reads what is stored; one line and exit 1 when
    it names a SQLite file that does not exist."""
    missing = missing_database(settings.database_url)
    if missing is None:
        return settings.database_url
    if os.environ.get("DATABASE_URL"):
        told = "DATABASE_URL"
    elif os.environ.get(DATA_DIR_ENV):
        told = DATA_DIR_ENV
    else:
        told = "the default: where planhat-sync dev keeps it, in the directory it runs in"
    fail(
        f"no state database at {missing} ({told}); run this where dev runs, or set "
        "DATABASE_URL to the one you mean",
        1,
    )


def refuse_without_token(settings: Settings) -> str | None:
    """A worker with no Planhat token for the ``default`` connection would keep its
    events pending forever: it does not start (one line, exit 2). Unless connections are
    stored (a multi-tenant deployment, each with its own token): then it starts for them,
    and this returns the warning to print once the start is sure to go on: ``default``'s
    events wait (each flush of it logs ``flush.no_planhat``) until PLANHAT_API_TOKEN is
    set. None when there is a token."""
    try:
        settings.planhat_token()
    except MissingTokenError as error:
        stored = stored_connections(settings.database_url)
        if "default" in stored:
            return None  # a stored ``default`` takes precedence over the environment's
        if not stored:
            fail(str(error.args[0]))
        return (
            f"warning: {error.args[0]} Serving the {len(stored)} stored connection(s); "
            "events for the connection 'default' stay pending until it is set."
        )
    return None


def stored_connections(database_url: str) -> list[str]:
    """The names of the stored connections (none in a database not made yet)."""
    if missing_database(database_url) is not None:
        return []
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            return list(session.exec(select(Connection.name)))
    except SQLAlchemyError:
        return []  # not migrated yet, or down: the token is what this start is missing
    finally:
        engine.dispose()
