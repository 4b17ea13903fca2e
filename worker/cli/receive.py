"""``planhat-sync`` commands for receiving: web, connections."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Annotated

import redis
import typer
from fastapi import FastAPI
from redis.asyncio import Redis as AsyncRedis

from connectors.planhat.client import DEFAULT_BASE_URL
from connectors.sources import OptionError, check_options, check_secret_name
from state.connections import add_connection, list_connections, remove_connection
from state.crypto import SecretKeyError, secret_box
from state.db import make_engine, migrate
from worker.cli.keys import require_keys
from worker.cli.mappings import mapping_app
from worker.cli.startup import checked_settings, existing_database
from worker.mcp_server.settings import McpSettings
from worker.runtime import logs
from worker.runtime.settings import EngineSettings, Settings, WebSettings, env_options

connections_app = typer.Typer(no_args_is_help=True, help="Connections: one per Planhat tenant.")
connections_app.add_typer(mapping_app, name="mapping")


def app_from_environment() -> FastAPI:
    """The receiver wired to Celery on REDIS_URL and DATABASE_URL (uvicorn factory)."""
    from worker.intake.inbox import Inbox, writer_for
    from worker.intake.receiver import create_web_app
    from worker.ops.ui import StatusPage, mount_status_page, waker
    from worker.runtime.metrics_state import add_metrics_route
    from worker.runtime.ratelimit import RedisRateLimiter
    from worker.runtime.tasks import CeleryDispatcher, app, connections
    from worker.runtime.tasks import settings as worker_settings

    logs.configure(worker_settings.planhat_sync_log_level, worker_settings.planhat_sync_log_format)
    limits = WebSettings().limits()
    # pre_ping: a connection lookup after a database restart is not a 500 (state/db.py).
    engine = make_engine(worker_settings.database_url, pre_ping=True)
    aclient = AsyncRedis.from_url(worker_settings.redis_url)
    dispatcher = CeleryDispatcher(app, redis.Redis.from_url(worker_settings.redis_url), aclient)
    wait = limits.database_wait
    inbox = Inbox(
        writer_for(engine, wait=wait),
        dispatcher,
        wait=wait,
        window=limits.group_window,
        size=limits.group_size,
    )

    mcp_sessions: list[AbstractAsyncContextManager[None]] = []  # set once /mcp is mounted

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await inbox.open()
        try:
            async with AsyncExitStack() as stack:
                for sessions in mcp_sessions:
                    await stack.enter_async_context(sessions)
                yield
        finally:
            await inbox.close()
            await aclient.aclose()

    tenants = connections(engine)
    web = create_web_app(connections=tenants, inbox=inbox, lifespan=lifespan, limits=limits)
    mcp_token = McpSettings().bearer_token()
    if mcp_token:  # the MCP server at /mcp, only behind its bearer token
        from worker.mcp_server.http import mount_mcp
        from worker.mcp_server.server import build_server, context_from_environment

        tools = context_from_environment(wake=waker(dispatcher))
        mcp_sessions.append(mount_mcp(web, build_server(tools), mcp_token))
    mount_status_page(
        web,
        StatusPage(
            engine=engine,
            connections=tenants,
            admin_token=worker_settings.admin_token(),
            limiter=RedisRateLimiter(
                redis.Redis.from_url(worker_settings.redis_url),
                rate_per_minute=EngineSettings().rate_per_minute,
                burst=EngineSettings().burst,
            ),
            wake=waker(dispatcher),
            default_options=env_options(),
        ),
    )
    add_metrics_route(web, engine)
    return web


def web_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    workers: Annotated[int, typer.Option(help="Receiver processes.")] = 1,
) -> None:
    """Serve the webhook receiver: POST /webhooks/{connection}/{source}."""
    from worker.intake.processes import serve
    from worker.intake.serving import PROTOCOL

    # A bad setting or mapping option stops it here, with the variable and the reason,
    # rather than in the app factory, where every webhook would be answered 500.
    settings = checked_settings(web=True)
    migrate(settings.database_url)
    require_keys(settings.database_url)
    typer.echo(f"receiver on http://{host}:{port}/webhooks/{{connection}}/{{source}}")
    if settings.admin_token():
        typer.echo(f"status page on http://{host}:{port}/ui (log in with PLANHAT_SYNC_ADMIN_TOKEN)")
    else:
        typer.echo("no status page: set PLANHAT_SYNC_ADMIN_TOKEN to serve one at /ui")
    if McpSettings().bearer_token():
        typer.echo(f"MCP server on http://{host}:{port}/mcp (Bearer PLANHAT_SYNC_MCP_TOKEN)")
    else:
        typer.echo("no MCP endpoint: set PLANHAT_SYNC_MCP_TOKEN to serve one at /mcp")
    # More than one process: a listening socket each (worker/intake/processes.py).
    serve(
        workers,
        app="worker.cli.receive:app_from_environment",
        factory=True,
        host=host,
        port=port,
        # uvicorn's httptools protocol, with a cap on request heads and a deadline for
        # them (worker/intake/serving.py); the limits are read from the environment.
        http=PROTOCOL,
        log_level="warning",
        access_log=False,
        # Client addresses are never used: no X-Forwarded-* rewriting on every request.
        proxy_headers=False,
    )


def _secrets(pairs: list[str]) -> dict[str, str]:
    secrets = {}
    for pair in pairs:
        source, sep, value = pair.partition("=")
        if not sep or not value:
            raise typer.BadParameter(f"{pair!r}: expected SOURCE=SECRET")
        try:  # a source (its webhook secret), or one of its credentials: stripe:api_key
            check_secret_name(source)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
        secrets[source] = value
    return secrets


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value:
            raise typer.BadParameter(f"{pair!r}: expected SOURCE.OPTION=VALUE")
        options[key] = value
    try:
        check_options(options)
    except OptionError as error:
        raise typer.BadParameter(str(error)) from None
    return options


@connections_app.command("add")
def connections_add(
    name: Annotated[str, typer.Argument(help="The name in the webhook URL.")],
    planhat_token: Annotated[str, typer.Option(help="The tenant's Planhat API token.")],
    planhat_base_url: Annotated[str, typer.Option(help="Its Planhat region.")] = DEFAULT_BASE_URL,
    secret: Annotated[
        list[str] | None, typer.Option(help="SOURCE=SECRET, one per source (repeatable).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(help="SOURCE.OPTION=VALUE, a mapping option (repeatable; see README)."),
    ] = None,
) -> None:
    """Add a tenant; its token and secrets are sealed with PLANHAT_SYNC_SECRET_KEY."""
    settings = Settings()
    try:
        box = secret_box()  # before the database is made: without a key nothing is added
    except SecretKeyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    migrate(settings.database_url)
    try:
        add_connection(
            make_engine(settings.database_url),
            box,
            name=name,
            planhat_base_url=planhat_base_url,
            planhat_token=planhat_token,
            secrets=_secrets(secret or []),
            options=_options(option or []),
        )
    except (ValueError, SecretKeyError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"added {name}: webhooks at /webhooks/{name}/<source>")


@connections_app.command("list")
def connections_list() -> None:
    """Connections with their base URL and the sources they have secrets for (not the secrets)."""
    database_url = existing_database(Settings())
    migrate(database_url)
    try:
        box = secret_box()
    except SecretKeyError:
        box = None
    typer.echo(json.dumps(list_connections(make_engine(database_url), box), indent=2))


@connections_app.command("remove")
def connections_remove(name: Annotated[str, typer.Argument()]) -> None:
    """Remove a tenant (its stored events and state stay)."""
    database_url = existing_database(Settings())
    try:
        remove_connection(make_engine(database_url), name)
    except LookupError as error:
        typer.echo(f"error: {error.args[0]}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"removed {name}")
