"""Reconciliation: bring in every change made in Planhat that an automation missed.

Automations are fire-and-forget: a missed one is a change never written back. For each
model a connection syncs back (a ``WritesBack`` source takes it with the connection's
options), beat lists the model newest first (``sort=-updatedAt``, the field Planhat
documents) and pages back to the stored cursor less a look-back window. Each record read
is stored as an event of the Planhat source with what was read as its detail (no second
read), its id ``<model>:<_id>:<version>``: a record scanned again at the same version is a
duplicate, and one the automation's hint also brought is read twice and dropped the second
time by the echo rule (it hashes as last read), so nothing is delivered twice. The cursor
moves only once a scan reached it, so a scan cut short starts again from the same place.
Every list call takes its turn in the token's budget. A first scan looks back only the
window: reconciliation catches what automations miss from then on, it is not an import.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from sqlalchemy import Engine

from connectors.change import version_number
from connectors.planhat.client import PlanhatClient
from connectors.planhat.models import MODELS, model_spec
from connectors.planhat.reread import detail
from connectors.source import PlanhatHints, WritesBack
from connectors.sources import SOURCES, OptionError, source_options
from state.connections import Tenant
from state.db import session_scope
from state.inbox import store_event
from state.tables import Cursor, InboxEvent, utcnow

log = structlog.get_logger(__name__)


def hint_source() -> str | None:
    """The registered source whose events are Planhat's hints (None: none is)."""
    return next((n for n, s in SOURCES.items() if isinstance(s, PlanhatHints)), None)


def synced_models(tenant: Tenant) -> list[str]:
    """The models whose changes made in Planhat go back to a source, for this connection."""
    models: set[str] = set()
    for name, source in SOURCES.items():
        if not isinstance(source, WritesBack) or not _uses(tenant, name):
            continue
        try:
            options = source_options(source, tenant.options)
        except OptionError:  # the write-back says so at every run
            continue
        models.update(name for name in MODELS if source.writes_back(name, options))
    return sorted(models)


def _uses(tenant: Tenant, source: str) -> bool:
    """Whether the connection has a secret or credential of ``source`` (``<source>`` or
    ``<source>:<name>``): a source it does not use writes nothing back, so nothing of it
    is listed (a scan of every model any source could take would cost calls for none)."""
    return any(key == source or key.startswith(f"{source}:") for key in tenant.secrets)


def reconcile(
    engine: Engine,
    planhat: PlanhatClient,
    take: Callable[[], None],
    connection: str,
    model: str,
    *,
    lookback: float,
    submit: Callable[[list[int]], None],
    now: float | None = None,
) -> int:
    """Scan ``model`` back to its cursor (less ``lookback`` seconds); store what changed
    since as events, hand them on, move the cursor. Returns how many were new. Planhat's
    errors and ``NoBudget`` propagate (the cursor stays)."""
    source = hint_source()
    if source is None:
        return 0
    name = f"{source}:{model}"
    window = int(lookback * 1_000_000)
    with session_scope(engine) as session:
        cursor = session.get(Cursor, (connection, name))
        position = int(cursor.position) if cursor and cursor.position else None
    since = (position if position is not None else _now_us(now)) - window
    spec = model_spec(model)
    newest, offset, new = position or 0, 0, 0
    while True:
        take()
        page = planhat.list_page(model, limit=spec.page_size, offset=offset, sort="-updatedAt")
        changed = [(record, v) for record in page if (v := _version(record)) >= since]
        ids = _store(engine, connection, source, model, changed)
        new += len(ids)
        if ids:
            submit(ids)
        newest = max([newest, *(v for _, v in changed)])
        if len(changed) < len(page) or len(page) < spec.page_size:
            break  # reached the cursor, or the end of the list
        offset += len(page)
    with session_scope(engine) as session:
        row = session.get(Cursor, (connection, name)) or Cursor(connection=connection, source=name)
        row.position, row.updated_at = str(newest), utcnow()
        session.add(row)
    log.info("reconcile", connection=connection, model=model, new=new)
    return new


def _store(
    engine: Engine,
    connection: str,
    source: str,
    model: str,
    changed: Sequence[tuple[dict[str, Any], int]],
) -> list[int]:
    new: list[int] = []
    with session_scope(engine) as session:
        for record, version in changed:
            planhat_id = str(record.get("_id", ""))
            if not planhat_id:
                continue
            hint = {"model": model, "_id": planhat_id, "action": "updated", "via": "reconcile"}
            inbox_id = store_event(
                session,
                connection=connection,
                source=source,
                event_id=f"{model}:{planhat_id}:{version}",
                body=json.dumps(hint).encode(),
                dispatched=True,
            )
            if inbox_id is None:
                continue  # this version was brought already
            event = session.get(InboxEvent, inbox_id)
            if event is not None:
                event.detail = detail(model, planhat_id, record)  # what was read: kept
                session.add(event)
            new.append(inbox_id)
    return new


def _version(record: Any) -> int:
    try:
        return version_number(record.get("updatedAt") or 0) if isinstance(record, dict) else 0
    except ValueError:
        return 0


def _now_us(now: float | None) -> int:
    return int((time.time() if now is None else now) * 1_000_000)
