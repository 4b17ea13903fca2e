"""``planhat-sync backfill SOURCE``: bring in what a source held before the connection.

The reading and storing is ``worker/intake/backfill.py``; here: the arguments, the
connection, who hands the stored events on, the progress display and one line for each
mistake a user can make.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, NoReturn

import httpx
import redis
import typer
from sqlalchemy.exc import SQLAlchemyError

from connectors.sources import OptionError
from state.connections import Connections, Tenant
from state.crypto import SecretKeyError, secret_box
from state.db import make_engine, migrate
from worker.cli.errors import database_problem
from worker.cli.progress import BackfillDisplay
from worker.cli.startup import checked_settings, existing_database
from worker.intake import backfill
from worker.runtime.settings import EngineSettings, Settings


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_since(text: str) -> int:
    """``2024-01-31`` (midnight UTC) or an ISO time: unix seconds."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text!r} is not a date like 2024-01-31 (or an ISO time)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def backfill_command(
    source: Annotated[
        str, typer.Argument(help="stripe, chargebee, typeform, zendesk or intercom.")
    ],
    connection: Annotated[str, typer.Option(help="The connection (tenant) to fill.")] = "default",
    since: Annotated[
        str | None,
        typer.Option(help="Only what was created on or after this date (2024-01-31)."),
    ] = None,
) -> None:
    """Read what SOURCE already holds (Stripe and Chargebee: customers, subscriptions,
    invoices; Typeform: responses; Zendesk, Intercom: tickets) into the normal pipeline.
    Interrupted, the same command goes on where it stopped; nothing is stored twice."""
    settings = checked_settings()
    database_url = existing_database(settings)  # never a new, empty one nobody reads
    try:
        start = parse_since(since) if since is not None else None
    except ValueError as error:
        _fail(str(error), 2)
    try:
        migrate(database_url)
        engine = make_engine(database_url)
        tenant = _tenant(Connections(engine, box=secret_box, default=settings.default_tenant),
                         connection)  # fmt: skip
    except SQLAlchemyError as error:
        _fail(database_problem(error, database_url))
    try:
        found = backfill.readers(tenant, source, settings.source_apis(), start)
    except (backfill.BackfillError, OptionError) as error:
        _fail(str(error), 2)
    submit, afterwards = _hand_on(settings, engine.dialect.name)
    tallies: list[backfill.Tally] = []
    try:
        with BackfillDisplay() as display:
            tallies = backfill.run(
                engine, tenant, source, found, since=start, submit=submit, progress=display
            )
    except httpx.HTTPStatusError as error:
        _fail(_refused(source, error))
    except httpx.HTTPError as error:
        _fail(f"cannot reach {source}'s API ({type(error).__name__}: {error}); {RESUME}")
    except KeyboardInterrupt:
        _fail(f"interrupted; {RESUME}", 130)
    for line in backfill.describe(tallies):
        typer.echo(line)
    typer.echo(afterwards())


RESUME = "what was read is kept: run the same command again to go on from there"


def _tenant(connections: Connections, name: str) -> Tenant:
    try:
        tenant = connections.get(name)
    except SecretKeyError as error:
        _fail(str(error))
    if tenant is None:
        _fail(f"no connection named {name!r} (planhat-sync connections list)", 2)
    return tenant


def _refused(source: str, error: httpx.HTTPStatusError) -> str:
    status, path = error.response.status_code, error.request.url.path
    if status in (401, 403):
        return (
            f"{source} refused the API key ({status} on {path}): check the connection's "
            f"{source}:api_key secret"
        )
    return f"{source} answered {status} on {path}; {RESUME}"


def _hand_on(
    settings: Settings, dialect: str
) -> tuple[Callable[[list[int]], None] | None, Callable[[], str]]:
    """Who ingests the stored events, and the line that says so. On SQLite that is the
    embedded engine (``planhat-sync dev``, no broker): its sweeper takes what is stored
    and not handed on at its next sweep. Otherwise the workers, through the broker; if
    it does not answer, the sweeper sends them once they count as lost."""
    if dialect == "sqlite":
        return (
            None,
            lambda: "stored: the running engine (planhat-sync dev) ingests them at its next sweep",
        )
    from redis.asyncio import Redis as AsyncRedis

    from worker.runtime.tasks import CeleryDispatcher, make_celery

    celery = make_celery(settings, EngineSettings())
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    dispatcher = CeleryDispatcher(celery, client, AsyncRedis.from_url(settings.redis_url))
    broker = {"up": True}

    def submit(inbox_ids: list[int]) -> None:
        if not broker["up"]:
            return
        try:
            dispatcher.ingest(inbox_ids)
        except (redis.exceptions.RedisError, OSError):
            broker["up"] = False  # stored is safe: the sweeper sends them on

    def said() -> str:
        if broker["up"]:
            return "stored and handed on: the workers ingest and flush them"
        return "stored; the broker did not answer: beat's sweeper hands them on"

    return submit, said
