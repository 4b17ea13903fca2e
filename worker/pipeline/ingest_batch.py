"""Ingest for a batch of events in one transaction: the same rules as ``ingest``
(worker/pipeline/ingest.py), with rows loaded in bulk and locked in one order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, MutableMapping, Sequence

from sqlmodel import Session, col, select

from connectors.change import Change
from state.db import for_update
from state.records import pending_rows, record_states
from state.tables import InboxEvent, Link, OutboxItem, RecordState
from worker.pipeline.ingest import (
    IngestReport,
    Verdict,
    _apply,
    _done,
    _log_context,
    _map,
    _nothing,
    _options,
    awaiting_detail,
)
from worker.pipeline.links import links
from worker.pipeline.reverse import Back, offer_from_planhat


def ingest_many(
    session: Session,
    inbox_ids: Sequence[int],
    *,
    default_options: Mapping[str, str] | None = None,
    options: MutableMapping[str, Mapping[str, str]] | None = None,
) -> list[IngestReport]:
    """``ingest`` for a batch in one transaction, loading rows in bulk: one query for the
    events, one per model for record states and one for pending rows, instead of several
    round trips per change. Same rules, same results (``_apply``). A concurrent insert
    of the same new row fails the whole transaction: the caller then tries again.
    ``options``: connections' mapping options already read (filled with those read here).
    """
    events = list(
        session.exec(
            for_update(
                session,
                select(InboxEvent)
                .where(col(InboxEvent.id).in_(inbox_ids), InboxEvent.status == "pending")
                .order_by(col(InboxEvent.id)),
            )
        )
    )
    mapped: list[tuple[InboxEvent, list[Change]]] = []
    reports: list[IngestReport] = []
    known = options if options is not None else {}  # each connection's options, read once
    for event in events:
        if awaiting_detail(event):
            continue
        with _log_context(event):
            changes = _map(session, event, default_options, known)
        if changes is None:
            reports.append(_nothing(event.connection, event.source, "dead"))
        else:
            mapped.append((event, changes))
    # Rows are locked, and new ones inserted, in one order (connection, model, key) for
    # every batch: two batches touching the same records at once wait for each other
    # instead of deadlocking. One record's changes keep their order (the events' order).
    work = sorted(
        (
            ((event.connection, change.model, change.record_key), n, event, change)
            for n, (event, changes) in enumerate(mapped)
            for change in changes
            if change.origin != "planhat"
        ),
        key=lambda item: (item[0], item[1]),  # stable: an event's changes keep their order
    )
    keys: dict[tuple[str, str], list[str]] = {}
    for (connection, model, record_key), *_ in work:
        group = keys.setdefault((connection, model), [])
        if not group or group[-1] != record_key:
            group.append(record_key)
    states: dict[tuple[str, str, str], RecordState] = {}
    pending: dict[tuple[str, str, str], OutboxItem | None] = {}
    linked: dict[tuple[str, str, str], Link] = {}
    for (connection, model), record_keys in keys.items():
        for record_key, link in links(session, connection, model, record_keys).items():
            linked[(connection, model, record_key)] = link
        for (_, record_key), state in record_states(
            session, connection, [model], record_keys
        ).items():
            states[(connection, model, record_key)] = state
        for record_key, row in pending_rows(session, connection, model, record_keys).items():
            pending[(connection, model, record_key)] = row
    verdicts: list[Counter[str]] = [Counter() for _ in mapped]
    models: list[set[str]] = [set() for _ in mapped]
    for key, n, event, change in work:
        with _log_context(event):
            verdict, pending[key] = _apply(session, event.connection, change, states.get(key),
                pending.get(key), event.id, linked.get(key),
                _options(session, event.connection, default_options, known),
            )  # fmt: skip
        verdicts[n][verdict] += 1
        if change.action == "deleted" and (tombstone := session.get(Link, key)) is not None:
            linked[key] = tombstone  # its record's later changes in this batch meet it
        if verdict is Verdict.QUEUED:
            models[n].add(change.model)
    for n, (event, changes) in enumerate(mapped):  # changes made in Planhat, in order
        for change in (c for c in changes if c.origin == "planhat"):
            given = _options(session, event.connection, default_options, known)
            with _log_context(event):
                verdicts[n][offer_from_planhat(session, event.connection, change,
                                               options=given, inbox_id=event.id)] += 1  # fmt: skip
    for n, (event, changes) in enumerate(mapped):
        reports.append(
            IngestReport(
                connection=event.connection,
                verdicts=dict(verdicts[n]),
                models=frozenset(models[n]),
                write_back=verdicts[n][Back.WRITE_BACK] > 0,
                source=event.source,
                status=_done(session, event, changes, verdicts[n][Verdict.STALE]),
            )
        )
    return reports
