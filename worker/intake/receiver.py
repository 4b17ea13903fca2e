"""The webhook receiver (FastAPI): verify, store, enqueue, answer; fast.

``POST /webhooks/{connection}/{source}``: a 202 means the verified raw body is committed in
the inbox (ARCHITECTURE.md, invariant 1). A rejection stores nothing and says why:

    404 unknown connection or source (or no secret for that source on that connection)
    415 not application/json          413 body over the limit (default 1 MiB)
    408 the body did not arrive within ``ReceiverLimits.body_timeout``
    503 + Retry-After: more than ``ReceiverLimits.max_in_flight`` webhooks at once
    401 bad, missing or expired signature, or a signed body that is not one of the
        source's events (connectors/webhooks.py: load_json says what JSON it reads)
    400 an event id that cannot be a key
    400 a body that is not a valid event, from a source that checks on receipt (the
        sender is the user: ``Source.checks_on_receipt``)
    200 a duplicate delivery (its event id is stored already): nothing new is stored
    503 a stored connection whose secrets PLANHAT_SYNC_SECRET_KEY cannot open (the sender
        retries; ``/readyz`` says which connections and why)
    503 + Retry-After: the database did not answer within ``ReceiverLimits.database_wait``
        (locked, down, restarting): nothing was stored, the sender retries

Any other source's verified event is kept whatever its body says: mapping runs once, in
ingest, and an event that cannot be mapped becomes a dead letter with the reason,
replayable once the mapping is fixed (invariant 7).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from connectors.change import MappingError, RecordRejected
from connectors.sources import SOURCES, OptionError, Source, source_options
from connectors.webhooks import SignatureError
from state.connections import NAME as CONNECTION_NAME
from state.connections import Connections, LockedConnectionError, Tenant
from worker.intake.inbox import DatabaseUnavailable, Inbox, within
from worker.intake.limits import InFlightLimit, ReceiverLimits
from worker.runtime import metrics

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024
# It becomes a database key: no NULs, no spaces. Always fullmatch: "$" also matches before
# a trailing newline, and "evt_1\n" would be stored as another event than "evt_1".
EVENT_ID = re.compile(r"[\x21-\x7e]{1,255}")


def _error(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_web_app(
    *,
    connections: Connections,
    inbox: Inbox,
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Callable[[], float] = time.time,
    lifespan: Any = None,
    limits: ReceiverLimits | None = None,
) -> FastAPI:
    """``inbox`` commits events and hands them to the workers (``worker.intake.inbox``)."""
    limits = limits or ReceiverLimits()
    wait = limits.database_wait

    def unavailable(why: str) -> JSONResponse:
        log.warning("receive.database_unavailable", reason=why)
        return _error(503, f"not stored: {why}; retry later", limits.retry_after)

    async def tenant_of(connection: str) -> Tenant | None:
        # Raises LockedConnectionError, DatabaseUnavailable.
        found, tenant = connections.cached(connection)
        if found:
            return tenant
        try:
            return await within(wait, run_in_threadpool(connections.get, connection))
        except TimeoutError:
            raise DatabaseUnavailable(f"the database did not answer within {wait:g} s") from None
        except SQLAlchemyError as error:
            why = f"the database is unavailable ({type(error).__name__})"
            raise DatabaseUnavailable(why) from None

    app = FastAPI(title="planhat-sync receiver", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(InFlightLimit, limit=limits.max_in_flight)

    @app.exception_handler(HTTPException)
    async def refused(_: Request, error: HTTPException) -> JSONResponse:
        # Starlette's own refusals (no such route, wrong method) speak as ours do.
        return JSONResponse({"error": error.detail}, error.status_code, error.headers)

    async def receive(request: Request) -> JSONResponse:
        started = time.perf_counter()
        answer = await handle(request)
        # Labels only once they are known to exist (``handle`` sets them): anyone can post
        # to any URL, and each new label value would be a new series kept forever.
        connection, source = getattr(request.state, "labels", (metrics.UNKNOWN,) * 2)
        metrics.webhook_answered(
            connection, source, answer.status_code, time.perf_counter() - started
        )
        return answer

    async def handle(request: Request) -> JSONResponse:
        connection: str = request.path_params["connection"]
        source: str = request.path_params["source"]
        kind = SOURCES.get(source)
        if kind is None:
            return _error(404, f"unknown source {source!r} (known: {', '.join(sorted(SOURCES))})")
        request.state.labels = (metrics.UNKNOWN, source)
        if not CONNECTION_NAME.fullmatch(connection):
            return _error(404, f"unknown connection {connection[:64]!r}")
        try:
            tenant = await tenant_of(connection)
        except LockedConnectionError:
            # Our fault, not the sender's, and passing: a 5xx makes them retry.
            return _error(
                503, f"connection {connection!r} is unavailable: its secrets cannot be opened"
            )
        except DatabaseUnavailable as error:
            return unavailable(str(error))
        if tenant is None:
            return _error(404, f"unknown connection {connection!r}")
        request.state.labels = (connection, source)
        secret = tenant.secrets.get(source)
        if not secret:
            return _error(404, f"connection {connection!r} has no secret for source {source!r}")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(415, "the body must be application/json")
        try:
            async with asyncio.timeout(limits.body_timeout):
                body = await _read_limited(request, max_body_bytes)
        except TimeoutError:
            answer = _error(408, f"the body did not arrive within {limits.body_timeout:g} s")
            answer.headers["Connection"] = "close"  # the rest of it is not waited for
            return answer
        if body is None:
            return _error(413, f"the body is over {max_body_bytes} bytes")
        try:
            event_id = kind.verify(request.headers, body, secret, clock())
        except SignatureError as error:
            return _error(401, f"signature refused: {error}")
        if not EVENT_ID.fullmatch(event_id):
            return _error(400, "the event id must be 1-255 printable characters")
        if kind.checks_on_receipt:
            # The sender is the user: tell them now. Mapping proper runs once, in ingest.
            try:
                kind.changes(body, event_id, _options(kind, tenant.options))
            except RecordRejected:
                pass  # well-formed: kept, and the worker makes it a dead letter
            except MappingError as error:
                return _error(400, str(error))
        try:
            inbox_id = await inbox.store(connection, source, event_id, body)
        except DatabaseUnavailable as error:
            return unavailable(str(error))
        if inbox_id is None:
            return JSONResponse({"status": "duplicate", "event_id": event_id}, status_code=200)
        return JSONResponse({"status": "accepted", "inbox_id": inbox_id}, status_code=202)

    # A plain Starlette route: FastAPI's parameter solving cost nearly as much CPU as the
    # rest of a webhook (measured in process, storage stubbed: 205 -> 129 µs a webhook).
    app.add_route("/webhooks/{connection}/{source}", receive, methods=["POST"])

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            await inbox.ready()  # within the wait, the database and then the broker
            # A key that cannot open the stored secrets fails every webhook for them.
            await within(wait, run_in_threadpool(connections.check_keys))
        except TimeoutError:
            problem = f"the database did not answer within {wait:g} s"
            return JSONResponse({"ok": False, "problem": problem}, status_code=503)
        except Exception as error:  # any failure means: not ready
            problem = str(error) or type(error).__name__
            return JSONResponse({"ok": False, "problem": problem}, status_code=503)
        return JSONResponse({"ok": True})

    return app


def _options(source: Source, given: Mapping[str, str]) -> Mapping[str, str]:
    # A connection whose options are wrong is our problem, not the sender's: the event is
    # still kept, read with the defaults here, and the worker buries it saying which
    # option is wrong (replayable once it is fixed).
    try:
        return source_options(source, given)
    except OptionError:
        return {}


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The raw body, or None as soon as it passes ``limit`` bytes (never read it all)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
