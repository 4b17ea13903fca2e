"""``planhat-sync`` commands that run and operate the sync engine."""

from __future__ import annotations

import json
import re
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import redis
import typer
from pydantic import ValidationError
from sqlalchemy import Engine

from state.db import make_engine, migrate
from state.prune import prune
from worker.cli import restart
from worker.cli.keys import require_keys
from worker.cli.progress import counted
from worker.cli.startup import checked_settings, existing_database, refuse_without_token
from worker.pipeline import dlq
from worker.runtime import logs
from worker.runtime.settings import EngineSettings, Settings, env_options

dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: writes that failed for good.")

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def _engine_ready() -> Settings:
    """A command that works on what is stored: the database must exist (it is migrated,
    since an older version may have made it)."""
    settings = Settings()
    logs.configure(settings.planhat_sync_log_level, settings.planhat_sync_log_format)
    migrate(existing_database(settings))
    return settings


def _started(*, needs_planhat: bool = False) -> Settings:
    """A long-running process: settings checked, database migrated, keys that open it."""
    settings = checked_settings()
    warning = refuse_without_token(settings) if needs_planhat else None
    migrate(settings.database_url)
    require_keys(settings.database_url)
    if warning:
        typer.echo(warning, err=True)
    return settings


def migrate_command() -> None:
    """Apply the state store's migrations (DATABASE_URL; default .planhat-sync/state.db,
    where dev keeps it)."""
    settings = Settings()
    migrate(settings.database_url)
    typer.echo(f"migrated {make_engine(settings.database_url).url.render_as_string()}")


def worker_command(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    queues: Annotated[str, typer.Option(help="Queues to take tasks from.")] = "ingest,flush,poll",
    loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "info",
) -> None:
    """Run a Celery worker (REDIS_URL, DATABASE_URL). Other options pass on to Celery."""
    _started(needs_planhat=True)
    from celery.signals import worker_ready, worker_shutting_down

    from worker.runtime.tasks import app as celery

    ran: list[str] = []  # "ready" once it consumed, "asked" once a signal asked it to stop
    worker_ready.connect(lambda **_: ran.append("ready"), weak=False)
    worker_shutting_down.connect(lambda **_: ran.append("asked"), weak=False)
    started = time.monotonic()
    argv = ["worker", f"--concurrency={concurrency}", f"--queues={queues}"]
    # Celery.start, not worker_main: worker_main drops the exit status (an "Unrecoverable
    # error" would exit 0, and a supervisor that restarts on failure would not).
    status: int | None = celery.start([*argv, f"--loglevel={loglevel}", *ctx.args])
    ran_for = time.monotonic() - started
    restarts = restart.restarts_so_far(ran_for)
    pause = restart.restart_pause(
        status, was_ready="ready" in ran, asked_to_stop="asked" in ran, restarts=restarts
    )
    if pause is None:
        raise typer.Exit(status or 0)
    restart.restart(pause, status, restarts)


def beat_command(
    ctx: typer.Context,
    schedule: Annotated[
        Path | None, typer.Option(help="Where beat keeps its schedule state (default: tmp).")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "info",
) -> None:
    """Run the scheduler (exactly one per deployment): the sweeper and the pollers."""
    _started()
    from worker.runtime.tasks import app as celery

    schedule = schedule or Path(tempfile.gettempdir()) / "planhat-sync-beat-schedule"
    celery.start(["beat", f"--schedule={schedule}", f"--loglevel={loglevel}", *ctx.args])


@dlq_app.command("list")
def dlq_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Dead letters with connection, model, record key, attempts and the reason."""
    letters = [dlq.describe(letter) for letter in dlq.list_dead_letters(_engine(_engine_ready()))]
    if as_json:
        typer.echo(json.dumps(letters, indent=2))
        return
    if not letters:
        typer.echo("no dead letters")
        return
    for letter in letters:
        back = f"  -> {letter['written_back_to']}" if letter["written_back_to"] else ""
        typer.echo(
            f"{letter['id']:>6}  {letter['connection']}  {letter['model'] or '(event)'}{back}  "
            f"{letter['key']}  attempts={letter['attempts']}  {letter['reason']}"
        )


@dlq_app.command("retry")
def dlq_retry(
    letter_id: Annotated[int | None, typer.Argument(metavar="[ID]")] = None,
    retry_all: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
) -> None:
    """Send a dead letter (or --all) back through the pipeline; the next flush writes it."""
    if (letter_id is None) == (not retry_all):
        typer.echo("error: give a dead letter ID or --all", err=True)
        raise typer.Exit(2)
    try:
        engine = _engine(_engine_ready())
        chosen = None if retry_all else [letter_id or 0]
        with counted("retrying dead letters") as tick:
            outcomes = dlq.retry(engine, chosen, default_options=env_options(), tick=tick)
    except LookupError as error:
        typer.echo(f"error: {error.args[0]}", err=True)
        raise typer.Exit(1) from None
    for outcome in outcomes:
        typer.echo(f"{outcome.letter_id}: {outcome.result}")
    _ask_for_flush({outcome.connection for outcome in outcomes})


@dlq_app.command("drop")
def dlq_drop(letter_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Forget a dead letter for good."""
    try:
        dlq.drop(_engine(_engine_ready()), letter_id)
    except LookupError as error:
        typer.echo(f"error: {error.args[0]}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"dropped {letter_id}")


def replay_command(
    since: Annotated[str, typer.Option(help="ISO time: events received since then.")],
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
) -> None:
    """Re-run stored events through mapping and diff (what Planhat has costs no call)."""
    try:
        when = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        typer.echo(f"error: --since {since!r} is not an ISO time", err=True)
        raise typer.Exit(2) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    engine = _engine(_engine_ready())
    with counted("replaying events") as tick:
        report = dlq.replay(
            engine, since=when, source=source, default_options=env_options(), tick=tick
        )
    typer.echo(json.dumps(report))
    _ask_for_flush(set(report["connections"]))


AGE = re.compile(r"([0-9]+)([dhm])")
AGE_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``: a whole, positive number of days, hours or minutes."""
    match = AGE.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"--older-than {text!r} is not an age like 30d, 12h or 90m")
    return timedelta(**{AGE_UNITS[match[2]]: int(match[1])})


def prune_command(
    older_than: Annotated[
        str | None,
        typer.Option(help="30d, 12h or 90m. Default: PLANHAT_SYNC_RETENTION_DAYS (30) days."),
    ] = None,
) -> None:
    """Delete processed inbox events and resolved dead letters older than this. Never
    pending events, unresolved dead letters, or an event either still needs."""
    if older_than is None:
        try:
            days = EngineSettings().retention_days
        except ValidationError as error:
            typer.echo(f"error: {error.errors()[0]['msg']} (PLANHAT_SYNC_*)", err=True)
            raise typer.Exit(2) from None
        if not days:
            typer.echo("retention is off (PLANHAT_SYNC_RETENTION_DAYS=0): give --older-than")
            return
        age, older_than = timedelta(days=days), f"{days:g}d"
    else:
        try:
            age = parse_age(older_than)
        except ValueError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
    pruned = prune(_engine(_engine_ready()), older_than=age)
    typer.echo(
        json.dumps(
            {
                "older_than": older_than,
                "cutoff": pruned.cutoff.isoformat(),
                "inbox_events": pruned.inbox_events,
                "dead_letters": pruned.dead_letters,
                "dead_letters_kept": pruned.dead_letters_kept,
            }
        )
    )


def _engine(settings: Settings) -> Engine:
    return make_engine(settings.database_url)


def _ask_for_flush(connections: set[str]) -> None:
    """Queued writes go out with the next flush; ask for one now if the broker answers."""
    if not connections:
        return
    from redis.asyncio import Redis as AsyncRedis

    from worker.runtime.tasks import CeleryDispatcher, make_celery

    settings = Settings()
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    celery = make_celery(settings, EngineSettings())
    try:
        dispatcher = CeleryDispatcher(celery, client, AsyncRedis.from_url(settings.redis_url))
        for connection in connections:
            dispatcher.flush(connection, 0.0)
            dispatcher.write_back(connection, 0.0)  # a retried write back to a source
    except (redis.exceptions.RedisError, OSError) as error:
        typer.echo(f"(no broker to ask for a flush: {error}; the next sweep writes them)")
    finally:
        client.close()
        celery.close()
