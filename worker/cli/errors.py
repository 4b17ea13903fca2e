"""The CLI's last word on an error: one line that says what went wrong, and exit 1.

A user's mistake (a closed port, a missing file, a database that is down or misspelled)
is theirs to fix, and a 300-line traceback hides the one line that says how. Every
command runs inside ``OneLineErrors``: an exception no command handled itself becomes
``error: <what>`` on stderr; ``planhat-sync --debug …`` lets it through, traceback and all.
"""

from __future__ import annotations

from typing import Any

import httpx
import redis
import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from state.db import database_url

DEBUG_HINT = "(planhat-sync --debug … shows the traceback)"
LONGEST = 300  # characters of an outside system's own message kept on the line


class OneLineErrors(typer.core.TyperGroup):
    """The top-level command group: runs the command, and turns what escapes it into one
    line (``describe``) unless ``--debug`` was given."""

    # ``ctx`` is typer's vendored click Context, which typer does not export by that name.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise  # already said in typer's own words (usage errors, typer.Exit)
        except Exception as error:
            if ctx.params.get("debug"):
                raise
            typer.echo(f"error: {describe(error)} {DEBUG_HINT}", err=True)
            raise typer.Exit(1) from None


def describe(error: Exception) -> str:
    """One line for an error: which thing failed and its own reason, no values."""
    if isinstance(error, DBAPIError | ArgumentError | NoSuchModuleError):
        return database_problem(error)
    if isinstance(error, httpx.TransportError):
        return f"cannot reach {_where(error)}: {_short(error) or type(error).__name__}"
    if isinstance(error, redis.exceptions.ConnectionError):
        return f"cannot reach Redis: {_short(error)}"
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or _short(error)}"
    return f"{type(error).__name__}: {_short(error)}"


def database_problem(error: SQLAlchemyError, url: str | None = None) -> str:
    """The state database that could not be used, without its password, and why."""
    shown = _shown_url(url or database_url())
    if isinstance(error, NoSuchModuleError | ArgumentError):
        return (
            f"DATABASE_URL {shown} is not a database URL this can open "
            "(sqlite:///FILE or postgresql+psycopg://USER@HOST/DB)"
        )
    reason = _short(error.orig) if isinstance(error, DBAPIError) else _short(error)
    return f"cannot use the state database {shown}: {reason}"


def _shown_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url[:80])


def _where(error: httpx.TransportError) -> str:
    try:
        return str(error.request.url)
    except RuntimeError:  # an error raised without a request
        return "the server"


def _short(error: BaseException | None) -> str:
    """An error's own message on one line (drivers spread theirs over several)."""
    text = " ".join(str(error or "").split())
    return text if len(text) <= LONGEST else text[: LONGEST - 1] + "…"
