"""The sync as tools: what each connection is doing, an event's or a record's story, dead
letters (list, retry, drop), replay a range, and send a change through the receiver.

Each calls what the status page and the CLI call (``worker/ops``, ``worker/pipeline/dlq``,
``connectors/senders``): the tools add no second way of doing any of it. What changes
state is a dry run unless ``dry_run`` is false and the server's writes are on.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from connectors.change import MappingError
from connectors.senders import SIGNERS, signed_for
from connectors.sources import SOURCES, OptionError, source_options
from state.connections import LockedConnectionError
from state.db import session_scope
from state.tables import DeadLetter, utcnow
from worker.mcp_server.context import ToolContext, tool_errors
from worker.mcp_server.outputs import (
    DeadLetters,
    StoryAnswer,
    SyncAction,
    SyncStatus,
    dead_letter_view,
)
from worker.ops import story
from worker.ops.health import DEFAULT_MAX_LAG, budget_reader, problems, token_state
from worker.ops.overview import active_connections, overview
from worker.pipeline import dlq

log = structlog.get_logger(__name__)

LOCAL = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
DryRun = Annotated[
    bool, Field(description="true (the default): say what would happen and change nothing.")
]
STORY_NOTE = (
    "An event id is stored once per connection and source: a second delivery of the same "
    "event (a sender's retry) is acknowledged and not stored again, so it changes nothing. "
    "A change older than the version Planhat has is dropped as stale (no call); one whose "
    "values Planhat already holds costs no call either."
)
SYNC_TOOLS = (
    "get_sync_status",
    "get_story",
    "list_dead_letters",
    "retry_dead_letter",
    "drop_dead_letter",
    "replay_events",
    "send_change",
)


def add_sync_tools(server: MCPServer, ctx: ToolContext) -> list[str]:
    @server.tool(annotations=LOCAL)
    def get_sync_status(
        connection: Annotated[str | None, Field(description="Only this connection.")] = None,
        max_lag: Annotated[
            float, Field(ge=0, description="Seconds a pending change may wait: a problem after.")
        ] = DEFAULT_MAX_LAG,
    ) -> SyncStatus:
        """Per connection: events in the last hour and day (received, applied, ignored,
        dead), the backlog and its age, the last flush, dead letters, the rate budget and
        the poll cursors; plus one line per problem a person must look at."""
        with tool_errors("get_sync_status"):
            names = active_connections(ctx.engine, ctx.connections.names())
            if connection is not None:
                names = [name for name in names if name == connection] or [connection]
            views = overview(
                ctx.engine,
                names,
                token_of=lambda name: token_state(ctx.connections, name),
                budget_of=budget_reader(_shows_use(ctx)),
                now=utcnow(),
            )
            return SyncStatus(connections=views, problems=problems(views, max_lag=max_lag))

    @server.tool(annotations=LOCAL)
    def get_story(
        query: Annotated[
            str,
            Field(description="An event id (evt_…), or a record key: sourceId=acme, or acme."),
        ],
    ) -> StoryAnswer:
        """The story of an event or a record: received → mapped → coalesced → sent →
        Planhat _id, or where and why it stopped (stale, unchanged, dead letter, waiting)."""
        with tool_errors("get_story"):
            found = story.search(ctx.engine, query, options_of=ctx.connections.options)
        return StoryAnswer(query=query, stories=found, note=STORY_NOTE)

    @server.tool(annotations=LOCAL)
    def list_dead_letters(
        connection: Annotated[str | None, Field(description="Only this connection.")] = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    ) -> DeadLetters:
        """Writes that failed for good, each with its reason, attempts, record and event."""
        letters = [dlq.describe(letter) for letter in dlq.list_dead_letters(ctx.engine)]
        if connection is not None:
            letters = [letter for letter in letters if letter["connection"] == connection]
        views = [dead_letter_view(letter) for letter in letters[:limit]]
        return DeadLetters(letters=views, count=len(letters))

    @server.tool(annotations=_writes(destructive=False, idempotent=False, outside=False))
    def retry_dead_letter(
        letter_id: Annotated[int, Field(description="The dead letter's id.")],
        dry_run: DryRun = True,
    ) -> SyncAction:
        """Send a dead letter back through the pipeline (the next flush writes it; a stale
        one costs nothing)."""
        with tool_errors("retry_dead_letter"):
            letter = _letter(ctx, letter_id)
            if dry_run:
                text = f"would retry dead letter {letter_id} ({letter['reason']}); nothing done"
                return SyncAction(dry_run=True, done=False, message=text, results=[letter])
            ctx.require_writes()
            outcomes = dlq.retry(ctx.engine, [letter_id], default_options=ctx.default_options)
            _wake(ctx, {outcome.connection for outcome in outcomes})
            log.info("mcp.dlq_retry", letter_id=letter_id)
            results = [
                {"letter_id": o.letter_id, "connection": o.connection, "result": o.result}
                for o in outcomes
            ]
            return SyncAction(dry_run=False, done=True, message="retried", results=results)

    @server.tool(annotations=_writes(destructive=True, idempotent=True, outside=False))
    def drop_dead_letter(
        letter_id: Annotated[int, Field(description="The dead letter's id.")],
        dry_run: DryRun = True,
        confirm: Annotated[
            int | None, Field(description="The id again, to confirm (needed to drop).")
        ] = None,
    ) -> SyncAction:
        """Forget a dead letter for good (its change is not sent)."""
        with tool_errors("drop_dead_letter"):
            letter = _letter(ctx, letter_id)
            if dry_run:
                text = f"would drop dead letter {letter_id}; nothing done"
                return SyncAction(dry_run=True, done=False, message=text, results=[letter])
            ctx.require_writes()
            if confirm != letter_id:
                raise ToolError(
                    f"refused: dropping dead letter {letter_id} loses its change for good and "
                    f"needs confirm={letter_id}. Ask the user, then call again with confirm set."
                )
            dlq.drop(ctx.engine, letter_id)
            log.info("mcp.dlq_drop", letter_id=letter_id)
            return SyncAction(dry_run=False, done=True, message=f"dropped {letter_id}")

    @server.tool(annotations=_writes(destructive=False, idempotent=True, outside=False))
    def replay_events(
        since: Annotated[str, Field(description="ISO time: events received from then.")],
        until: Annotated[str | None, Field(description="ISO time: and before then.")] = None,
        source: Annotated[str | None, Field(description="Only this source's events.")] = None,
        dry_run: DryRun = True,
    ) -> SyncAction:
        """Re-run stored events of a time range through mapping and diff; what Planhat
        already has is dropped by the diff (no call)."""
        with tool_errors("replay_events"):
            start, end = _when(since, "since"), _when(until, "until") if until else None
            if dry_run:
                ids = dlq.events_received(ctx.engine, since=start, until=end, source=source)
                text = f"would replay {len(ids)} stored event(s); nothing done"
                return SyncAction(dry_run=True, done=False, message=text)
            ctx.require_writes()
            report = dlq.replay(
                ctx.engine,
                since=start,
                until=end,
                source=source,
                default_options=ctx.default_options,
            )
            _wake(ctx, set(report["connections"]))
            log.info("mcp.replay", events=report["events"], queued=report["queued"])
            text = f"replayed {report['events']} event(s): {report['queued']} change(s) queued"
            return SyncAction(dry_run=False, done=True, message=text, results=[report])

    @server.tool(annotations=_writes(destructive=False, idempotent=False, outside=True))
    def send_change(
        source: Annotated[str, Field(description=f"The source: one of {', '.join(SIGNERS)}.")],
        body: Annotated[dict[str, Any], Field(description="The event as the source sends it.")],
        connection: Annotated[str, Field(description="The connection it is for.")] = "default",
        dry_run: DryRun = True,
    ) -> SyncAction:
        """Send an event through the normal pipeline: signed as the source signs it, posted
        to the receiver. A dry run maps it instead and returns the changes it would make."""
        with tool_errors("send_change"):
            raw = json.dumps(body).encode()
            if dry_run:
                return _mapped(ctx, source, raw, connection)
            ctx.require_writes()
            return _sent(ctx, source, raw, connection)

    return list(SYNC_TOOLS)


def _writes(*, destructive: bool, idempotent: bool, outside: bool) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=False,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=outside,
    )


def _shows_use(ctx: ToolContext) -> Any:
    return ctx.limiter if hasattr(ctx.limiter, "use") else None


def _letter(ctx: ToolContext, letter_id: int) -> dict[str, Any]:
    with session_scope(ctx.engine) as session:
        letter = session.get(DeadLetter, letter_id)
        if letter is None:
            raise ToolError(f"no dead letter with id {letter_id} (list_dead_letters shows them)")
        return dlq.describe(letter)


def _when(text: str, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ToolError(f"{name} {text!r} is not an ISO time like 2026-12-01T10:00:00Z") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _wake(ctx: ToolContext, connections: set[str]) -> None:
    if ctx.wake is None:
        return
    for name in sorted(connections):
        ctx.wake(name)


def _mapped(ctx: ToolContext, source_name: str, raw: bytes, connection: str) -> SyncAction:
    source = SOURCES.get(source_name)
    if source is None:
        raise ToolError(f"no source named {source_name!r} (one of {', '.join(SOURCES)})")
    options = {**ctx.default_options, **ctx.connections.options(connection)}
    try:
        changes = source.changes(raw, "mcp-dry-run", source_options(source, options))
    except (MappingError, OptionError) as error:
        raise ToolError(f"the {source_name} mapping refuses this event: {error}") from error
    results = [
        {
            "model": c.model,
            "key": c.record_key,
            "fields": dict(c.fields),
            "version": c.version,
            "action": c.action,
        }
        for c in changes
    ]
    text = f"would make {len(changes)} change(s); nothing sent"
    return SyncAction(dry_run=True, done=False, message=text, results=results)


def _sent(ctx: ToolContext, source: str, raw: bytes, connection: str) -> SyncAction:
    if ctx.receiver is None:
        raise ToolError("no receiver to send to: set PLANHAT_SYNC_MCP_RECEIVER_URL")
    try:
        tenant = ctx.connections.get(connection)
    except LockedConnectionError as error:
        raise ToolError(f"connection {connection!r}: its secrets cannot be opened") from error
    secret = tenant.secrets.get(source) if tenant is not None else None
    if not secret:
        raise ToolError(f"connection {connection!r} has no {source} secret to sign with")
    try:
        headers = signed_for(source, secret, raw, time.time())
    except (KeyError, ValueError) as error:
        raise ToolError(f"cannot sign as {source}: {error}") from error
    answer = ctx.receiver.post(f"/webhooks/{connection}/{source}", content=raw, headers=headers)
    log.info("mcp.send", source=source, connection=connection, status=answer.status_code)
    done = answer.status_code < 300
    result = {"status": answer.status_code, "answer": answer.text[:500]}
    text = f"the receiver answered {answer.status_code}"
    return SyncAction(dry_run=False, done=done, message=text, results=[result])
