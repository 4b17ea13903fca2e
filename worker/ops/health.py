"""What needs a person, from the overview: the status command's exit and the page's banner.

Also how the overview learns a connection's token state and its budget, the same way for
the web process, ``dev`` and the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import redis

from state.connections import Connections, LockedConnectionError
from worker.ops.overview import ConnectionOverview, TokenState
from worker.runtime.ratelimit import BudgetUse, budget_key

DEFAULT_MAX_LAG = 300.0  # seconds the oldest pending change may wait before it is a problem


class ShowsUse(Protocol):
    def use(self, key: str) -> BudgetUse: ...


def problems(overviews: Sequence[ConnectionOverview], *, max_lag: float) -> list[str]:
    """One line per thing a person must look at; none when all is well."""
    found = []
    for view in overviews:
        if view.token_problem:
            found.append(f"{view.name}: {view.token_problem}")
        if view.dead_letters:
            found.append(f"{view.name}: {view.dead_letters} dead letter(s) (planhat-sync dlq list)")
        if view.oldest_pending is not None and view.oldest_pending > max_lag:
            found.append(
                f"{view.name}: the oldest pending change has waited {age(view.oldest_pending)} "
                f"(more than {max_lag:g} s; backlog {view.backlog})"
            )
    return found


def token_state(connections: Connections, name: str) -> TokenState:
    try:
        tenant = connections.get(name)
    except LockedConnectionError as error:
        return TokenState(budget_key=None, problem=f"its secrets cannot be opened: {error}")
    if tenant is None:
        return TokenState(budget_key=None, problem="no such connection (connections add)")
    if not tenant.planhat_token:
        return TokenState(
            budget_key=None,
            problem="no Planhat token: events wait (set PLANHAT_API_TOKEN, or "
            "connections add --planhat-token)",
        )
    return TokenState(budget_key=budget_key(tenant.planhat_token))


def budget_reader(limiter: ShowsUse | None) -> Callable[[str], BudgetUse | None]:
    """``limiter.use``, or None when it cannot be read (no limiter, Redis down)."""

    def read(key: str) -> BudgetUse | None:
        if limiter is None:
            return None
        try:
            return limiter.use(key)
        except (redis.exceptions.RedisError, OSError):
            return None

    return read


def age(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.5 h``, ``2.0 d``: short, for people."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"
