"""``planhat-sync mcp``: Planhat and the sync as tools for an AI agent, on stdio.

A desktop MCP client starts this command and speaks MCP over its standard input and
output; so nothing but the protocol may be printed there (logs go to stderr). The same
server is served over HTTP by ``web`` at ``/mcp`` when PLANHAT_SYNC_MCP_TOKEN is set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import redis
import structlog
import typer

from worker.cli import operate
from worker.mcp_server.settings import McpSettings
from worker.runtime.settings import EngineSettings, Settings

log = structlog.get_logger(__name__)


def mcp_command(
    allow_writes: Annotated[
        bool,
        typer.Option(
            "--allow-writes",
            help="Let write tools write when called with dry_run=false (else dry runs only; "
            "also PLANHAT_SYNC_MCP_WRITES=1).",
        ),
    ] = False,
) -> None:
    """Serve Planhat (every model, every operation) and the sync (status, stories, dead
    letters, replay, send) as MCP tools on stdio, for a desktop AI client."""
    operate._engine_ready()  # the state store must exist; logs on stderr
    from worker.mcp_server.server import build_server, context_from_environment

    writes = allow_writes or McpSettings().writes
    context = context_from_environment(writes=writes, wake=_wake_by_broker())
    log.info("mcp.start", transport="stdio", writes=writes)
    build_server(context).run("stdio")


def _wake_by_broker() -> Callable[[str], None]:
    """Ask the workers for a flush of a connection now (after a retry or a replay), as
    ``dlq retry`` does; without a broker the next sweep writes them."""

    def wake(connection: str) -> None:
        from redis.asyncio import Redis as AsyncRedis

        from worker.ops.ui import waker
        from worker.runtime.tasks import CeleryDispatcher, make_celery

        settings = Settings()
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
        celery = make_celery(settings, EngineSettings())
        try:
            dispatcher = CeleryDispatcher(celery, client, AsyncRedis.from_url(settings.redis_url))
            waker(dispatcher)(connection)
        except (redis.exceptions.RedisError, OSError) as error:
            log.info("mcp.no_broker", connection=connection, reason=type(error).__name__)
        finally:
            client.close()
            celery.close()

    return wake
