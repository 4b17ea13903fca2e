"""What every tool shares, and how failures become messages a model can act on.

A tool raises ``ToolError`` for anything the caller can fix (a wrong id, writes off, a
refused record): the SDK returns its text with ``isError: true``. Anything else would be
reported as a bare "Error executing tool" (the SDK hides unexpected exceptions), so the
errors we know of are translated here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from mcp.server.mcpserver.exceptions import ToolError
from sqlalchemy import Engine

from connectors.planhat.client import PlanhatClient
from connectors.planhat.errors import (
    DEFAULT_RATE_LIMIT_WAIT,
    RATE_LIMIT_GUESS_CAP,
    NotFoundError,
    PlanhatError,
    RateLimitedError,
    rate_limit_wait,
)
from connectors.planhat.models import UnknownModelError, UnsupportedOperationError
from connectors.planhat.retry import RetryPolicy
from connectors.source import NoBudget
from state.connections import Connections, LockedConnectionError
from worker.runtime.ratelimit import RateLimiter, budget_key, metered

log = structlog.get_logger(__name__)

# A tool call waits out a 429 briefly (the model is waiting, not a queue), and retries a
# 5xx twice; what outlasts that is an error the model sees and may retry.
TOOL_RETRY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=4.0, max_rate_limit_wait=10.0)
WRITES_ENV = "PLANHAT_SYNC_MCP_WRITES"
WRITES_OFF = (
    "writes are off: this MCP server was started read-only. Call again with dry_run=true to "
    "see the planned change; to write, the operator restarts it with --allow-writes "
    f"(or {WRITES_ENV}=1)."
)


@dataclass(kw_only=True)
class ToolContext:
    """The state store, the tenants, the shared rate budget, and the write switch."""

    engine: Engine
    connections: Connections
    limiter: RateLimiter  # one budget per Planhat token, shared with the workers
    writes: bool = False
    max_budget_wait: float = 30.0  # seconds a call may wait for budget before it gives up
    retry: RetryPolicy = TOOL_RETRY
    # Where ``send_change`` posts a signed event: the webhook receiver (``web`` or ``dev``).
    receiver: httpx.Client | None = None
    # Ask for a flush of a connection now (after a retry or a replay); None: the next
    # sweep writes them.
    wake: Callable[[str], None] | None = None
    default_options: Mapping[str, str] = field(default_factory=dict)

    def require_writes(self) -> None:
        if not self.writes:
            raise ToolError(WRITES_OFF)

    @contextmanager
    def planhat(self, connection: str) -> Iterator[PlanhatClient]:
        """A Planhat client for ``connection`` whose every request (retries included) is
        taken from its token's budget first, as the workers' are."""
        try:
            tenant = self.connections.get(connection)
        except LockedConnectionError as error:
            raise ToolError(f"connection {connection!r}: its secrets cannot be opened") from error
        if tenant is None:
            known = ", ".join(self.connections.names())
            raise ToolError(f"no connection named {connection!r} (known: {known})")
        if not tenant.planhat_token:
            raise ToolError(f"connection {connection!r} has no Planhat token")
        budget = budget_key(tenant.planhat_token)
        hooks: dict[str, list[Callable[..., Any]]] = {
            **metered(self.limiter, budget, max_wait=self.max_budget_wait),
            "response": [shares_429s(self.limiter, budget, cap=RATE_LIMIT_GUESS_CAP)],
        }
        with PlanhatClient(
            tenant.planhat_token,
            base_url=tenant.planhat_base_url,
            retry=self.retry,
            event_hooks=hooks,
        ) as client:
            yield client


def shares_429s(
    limiter: RateLimiter, budget: str, *, cap: float
) -> Callable[[httpx.Response], None]:
    """An httpx response hook: a 429 pauses every caller of the token, the workers too
    (ARCHITECTURE.md invariant 6), for the time Planhat gives, or for a shared guess that
    grows at each such 429 (as the flush does), before the client waits it out itself."""

    def after(response: httpx.Response) -> None:
        if response.status_code != 429:
            return
        wait = rate_limit_wait(response)
        if wait is None:
            wait = limiter.back_off(budget, first=DEFAULT_RATE_LIMIT_WAIT, cap=cap)
        else:
            limiter.pause(budget, wait)
        log.info("mcp.rate_limited", wait_s=round(wait, 1))

    return after


@contextmanager
def tool_errors(tool: str) -> Iterator[None]:
    """Known failures as ``ToolError``s: one line, what went wrong and what to do. Planhat's
    messages name the method and path, never the token."""
    try:
        yield
    except ToolError:
        raise
    except NoBudget as error:
        log.info("mcp.no_budget", tool=tool, wait_s=round(error.wait, 1))
        raise ToolError(
            f"the Planhat rate budget of this token is used up for now: try again in "
            f"{error.wait:.0f} s"
        ) from error
    except RateLimitedError as error:
        raise ToolError(
            f"Planhat is rate limiting this token (429): try again in {error.retry_after:.0f} s"
        ) from error
    except NotFoundError as error:
        raise ToolError(f"not found in Planhat: {error}") from error
    except PlanhatError as error:
        log.info("mcp.planhat_error", tool=tool, status=error.status_code)
        raise ToolError(f"Planhat answered: {error}") from error
    except (UnknownModelError, UnsupportedOperationError, LookupError, ValueError) as error:
        raise ToolError(str(error.args[0]) if error.args else str(error)) from error
