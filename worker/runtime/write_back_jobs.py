"""The write-back job: what the Celery task (and the embedded runner) call for a connection
whose changes made in Planhat wait to be written back to their sources.

Each source that takes write-backs (``WritesBack``) is written to in batches
(``worker/pipeline/write_back.py``) with its own budget per source credential: a limiter
per declared rate (``Runtime.write_limiters``), keyed by a hash of the source's name, the
connection's credentials for it and its webhook secret (never the secrets themselves).
Then the job asks to run again when the next row is due.
"""

from __future__ import annotations

import json

import httpx
import structlog

from connectors.source import WriteBackContext, WritesBack
from connectors.sources import SOURCES, OptionError, credentials_of, source_options
from state.connections import LockedConnectionError, Tenant
from worker.pipeline.write_back import WriteBackReport, due, postpone, write_back_batch
from worker.runtime.jobs import MAX_COUNTDOWN, PACE_SLEEP, Runtime
from worker.runtime.ratelimit import budget_key

log = structlog.get_logger(__name__)

# One HTTP client per batch of writes: timeouts set, no redirects (a redirect would send a
# signed body somewhere the connection never named).
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def run_write_back(rt: Runtime, connection: str) -> list[WriteBackReport]:
    """Write back what is due for ``connection``, source by source; then ask for the next
    run when the next row will be due."""
    rt.dispatcher.write_back_started(connection)
    sources, _ = due(rt.engine, connection)
    if not sources:
        _later(rt, connection)
        return []
    reports: list[WriteBackReport] = []
    with rt.locks.hold(f"write-back:{connection}", ttl=rt.config.lease_seconds) as got:
        if not got:  # another worker is writing back for this connection
            rt.dispatcher.write_back(connection, PACE_SLEEP)
            return []
        try:
            tenant = rt.clients.connections.get(connection)
        except LockedConnectionError:  # Connections logs why; the rows wait
            rt.dispatcher.write_back(connection, MAX_COUNTDOWN)
            return []
        if tenant is None:
            log.error("write_back.no_connection", connection=connection)
            return []
        for name in sources:
            reports.extend(_write_source(rt, tenant, name))
    _later(rt, connection)
    return reports


def _write_source(rt: Runtime, tenant: Tenant, name: str) -> list[WriteBackReport]:
    source = SOURCES.get(name)
    if not isinstance(source, WritesBack):
        log.error("write_back.not_two_way", connection=tenant.name, source=name)
        postpone(rt.engine, tenant.name, name, MAX_COUNTDOWN)
        return []
    try:
        options = source_options(source, tenant.options)
    except OptionError as error:  # said at every run until the option is fixed
        log.warning("write_back.bad_options", connection=tenant.name, source=name,
                    error=str(error))  # fmt: skip
        postpone(rt.engine, tenant.name, name, MAX_COUNTDOWN)
        return []
    credentials = credentials_of(source, tenant.secrets)
    secret = tenant.secrets.get(name)
    budget = budget_key(json.dumps(["write-back", name, sorted(credentials.items()), secret]))
    limiter = rt.write_limiters.get(source.write_rate_per_minute)
    policy = rt.config.policy()
    reports = []
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as http:
        context = WriteBackContext(
            connection=tenant.name,
            credentials=credentials,
            api_base=rt.apis.base(name),
            secret=secret,
            options=options,
            http=http,
        )
        while True:
            report = write_back_batch(
                rt.engine, source, context, limiter, budget, name=name, policy=policy
            )
            reports.append(report)
            if report.stopped or not report.full:
                return reports


def _later(rt: Runtime, connection: str) -> None:
    ready, wait = due(rt.engine, connection)
    if ready:  # arrived while this run wrote
        rt.dispatcher.write_back(connection, 0.0)
    elif wait is not None:
        rt.dispatcher.write_back(connection, min(MAX_COUNTDOWN, wait))
