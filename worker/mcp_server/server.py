"""The MCP server: Planhat tools from the model registry, and the sync tools.

``build_server(ctx)`` is what tests connect the SDK's in-process ``Client`` to;
``context_from_environment`` wires the same context as every other command does (the
state store from DATABASE_URL, the tenants, the Redis rate budget the workers share).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis
import structlog
from mcp.server import MCPServer

from connectors.tls import tls
from state.connections import Connections
from state.crypto import secret_box
from state.db import make_engine
from worker.mcp_server.context import ToolContext
from worker.mcp_server.planhat_tools import add_planhat_tools
from worker.mcp_server.settings import McpSettings
from worker.mcp_server.sync_tools import add_sync_tools
from worker.runtime.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from worker.runtime.settings import EngineSettings, Settings, env_options

log = structlog.get_logger(__name__)
INSTRUCTIONS = """\
Planhat (every model: list, get, create, update, delete, bulk upsert; tools named
verb_model, e.g. list_companies) and the planhat-sync engine that keeps it in sync with
billing, helpdesk and survey systems (get_sync_status, get_story, list_dead_letters,
retry_dead_letter, drop_dead_letter, replay_events, send_change).
Writes are dry runs by default: they return the planned change and the diff against what
Planhat holds now. Writing needs dry_run=false and a server started with writes on;
deleting also needs confirm set to the same id. Ask the user before writing.
Ids: a Planhat _id, extid-<externalId> or srcid-<sourceId>."""


def build_server(ctx: ToolContext) -> MCPServer:
    server = MCPServer(
        name="planhat-sync",
        title="Planhat and planhat-sync",
        instructions=INSTRUCTIONS,
        # Tools validate and answer in our words; the SDK's own log lines go to stderr.
        log_level="WARNING",
    )
    add_planhat_tools(server, ctx)
    add_sync_tools(server, ctx)
    return server


def context_from_environment(
    *, writes: bool | None = None, wake: Callable[[str], None] | None = None
) -> ToolContext:
    """The context every command builds: DATABASE_URL, the connections (opened with
    PLANHAT_SYNC_SECRET_KEY), the Redis budget on REDIS_URL that the workers draw from."""
    settings = Settings()
    config = EngineSettings()
    mcp = McpSettings()
    engine = make_engine(settings.database_url, pre_ping=True)
    return ToolContext(
        engine=engine,
        connections=Connections(engine, box=secret_box, default=settings.default_tenant),
        limiter=shared_limiter(settings.redis_url, config),
        writes=mcp.writes if writes is None else writes,
        max_budget_wait=config.max_budget_wait,
        receiver=httpx.Client(
            base_url=mcp.receiver_url, verify=tls(), timeout=10.0, follow_redirects=False
        ),
        wake=wake,
        default_options=env_options(),
    )


def shared_limiter(redis_url: str, config: EngineSettings) -> RateLimiter:
    """The workers' budget in Redis. Without Redis (next to ``planhat-sync dev``, which
    keeps its budget in its own process) there is nothing to share: this process keeps one
    of its own at the same rate, and says so on stderr."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except (redis.exceptions.RedisError, OSError) as error:
        client.close()
        log.warning("mcp.no_redis", reason=type(error).__name__, budget="this process only")
        return LocalRateLimiter(rate_per_minute=config.rate_per_minute, burst=config.burst)
    return RedisRateLimiter(client, rate_per_minute=config.rate_per_minute, burst=config.burst)
