"""``planhat-sync status``: the status page's overview in the terminal, and a health check.

It exits 1 when something needs a person (a connection without a usable Planhat token,
dead letters, a backlog older than ``--max-lag``), one line on stderr per problem; 0 when
all is well. The state store is found as every other command finds it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

import redis
import typer

from state.connections import Connections
from state.crypto import secret_box
from state.tables import utcnow
from worker.cli import operate
from worker.ops.health import DEFAULT_MAX_LAG, age, budget_reader, problems, token_state
from worker.ops.overview import ConnectionOverview, active_connections, overview
from worker.runtime.ratelimit import RedisRateLimiter
from worker.runtime.settings import EngineSettings


def status_command(
    max_lag: Annotated[
        float,
        typer.Option(min=0, help="Seconds the oldest pending change may wait before exit 1."),
    ] = DEFAULT_MAX_LAG,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of text.")] = False,
) -> None:
    """Per connection: events in the last hour and day, backlog, last flush, dead letters,
    rate budget, poll cursors. Exit 1, one line per problem, when something needs a person."""
    settings = operate._engine_ready()
    engine = operate._engine(settings)
    connections = Connections(engine, box=secret_box, default=settings.default_tenant)
    config = EngineSettings()
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    limiter = RedisRateLimiter(client, rate_per_minute=config.rate_per_minute, burst=config.burst)
    try:
        overviews = overview(
            engine,
            active_connections(engine, connections.names()),
            token_of=lambda name: token_state(connections, name),
            budget_of=budget_reader(limiter),
            now=utcnow(),
        )
    finally:
        client.close()
    found = problems(overviews, max_lag=max_lag)
    if as_json:
        typer.echo(json.dumps({"connections": [_plain(view) for view in overviews],
                               "problems": found}, indent=2, default=str))  # fmt: skip
    else:
        if not overviews:
            typer.echo("no connection has received anything yet")
        for view in overviews:
            typer.echo(_text(view))
    for problem in found:
        typer.echo(f"problem: {problem}", err=True)
    if found:
        raise typer.Exit(1)


def _text(view: ConnectionOverview) -> str:
    hour, day = view.last_hour, view.last_day
    oldest = age(view.oldest_pending) if view.oldest_pending is not None else "none"
    flushed = (
        age((utcnow() - view.last_flush).total_seconds()) + " ago" if view.last_flush else "never"
    )
    lines = [
        f"{view.name}",
        f"  events (last hour / day): received {hour.received}/{day.received}, "
        f"applied {hour.applied}/{day.applied}, ignored {hour.ignored}/{day.ignored}, "
        f"dead {hour.dead}/{day.dead}",
        f"  backlog {view.backlog} ({view.pending_events} events, {view.pending_changes} "
        f"changes, {view.pending_write_backs} write-backs), oldest waiting {oldest}",
        f"  last flush {flushed}; dead letters {view.dead_letters}",
        f"  {view.token_problem or 'Planhat token set'}",
    ]
    budget = view.budget
    if budget is not None:
        paused = f", paused {budget.paused_for:.1f} s" if budget.paused_for > 0 else ""
        lines.append(
            f"  budget {budget.in_use}/{budget.burst} in use; 429s {budget.rate_limited_hour} "
            f"last hour, {budget.rate_limited_day} last day{paused}"
        )
    lines.extend(f"  cursor {cursor.feed}: moved {age(cursor.age)} ago" for cursor in view.cursors)
    return "\n".join(lines)


def _plain(view: ConnectionOverview) -> dict[str, Any]:
    plain = dataclasses.asdict(view)
    plain["backlog"] = view.backlog
    return plain
