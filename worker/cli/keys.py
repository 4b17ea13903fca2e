"""``planhat-sync keys``: the key that seals tokens and secrets at rest, and changing it.

Every long-running command (``web``, ``worker``, ``beat``, ``dev``) calls ``require_keys``
when it starts: a key that cannot open what is stored would fail every webhook and every
flush for those connections, so the process says so in one line and does not start.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from state.crypto import KEY_ENV, SecretBox, SecretKeyError, generate_key, secret_box
from state.db import make_engine, migrate
from state.keys import check_secrets, reseal
from worker.cli.startup import existing_database
from worker.runtime.settings import Settings

keys_app = typer.Typer(
    no_args_is_help=True,
    help=f"The key that seals tokens and secrets at rest ({KEY_ENV}).",
)


def require_keys(database_url: str, box: Callable[[], SecretBox] = secret_box) -> None:
    """Exit 2 with one line unless the key opens every stored connection."""
    engine = make_engine(database_url)
    try:
        check_secrets(engine, box)
    except SecretKeyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key (for PLANHAT_SYNC_SECRET_KEY)."""
    typer.echo(generate_key())


@keys_app.command("check")
def keys_check() -> None:
    """Say whether PLANHAT_SYNC_SECRET_KEY opens every stored connection, and whether the
    first key alone would (then the others may be dropped)."""
    database_url = existing_database(Settings())
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        report = check_secrets(engine, secret_box)
    except SecretKeyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    typer.echo(f"ok: {KEY_ENV} opens all {report.connections} stored connection(s)")
    if report.on_older_key:
        typer.echo(
            f"{report.on_older_key} of them are sealed under an older key: run "
            "`planhat-sync keys rotate` before dropping it"
        )


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-seal every stored token and secret under the first key of
    PLANHAT_SYNC_SECRET_KEY=NEW,OLD (all at once, or nothing if one does not open)."""
    database_url = existing_database(Settings())
    migrate(database_url)
    try:
        box = secret_box()
    except SecretKeyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if box.key_count < 2:
        typer.echo(
            f"error: {KEY_ENV} holds one key: set the new key first and the old one after "
            f"it ({KEY_ENV}=NEW,OLD; planhat-sync keys generate prints a new one)",
            err=True,
        )
        raise typer.Exit(2)
    engine = make_engine(database_url)
    try:
        count = reseal(engine, box)
    except SecretKeyError as error:
        typer.echo(f"error: nothing re-sealed: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    typer.echo(
        f"re-sealed {count} connection(s) under the first key of {KEY_ENV}; once every "
        "process runs with it, drop the old key"
    )
