"""The reverse path's jobs: writing back (what the Celery task and the embedded runner call
for a connection whose changes made in Planhat wait to be written back to their sources),
and reconciliation (beat's scan for what Planhat's automations missed).

Each source that takes write-backs (``WritesBack``) is written to in batches
(``worker/pipeline/write_back.py``) with its own budget per source credential: a limiter
per declared rate (``Runtime.write_limiters``), keyed by a hash of the source's name and
the connection's credentials for it (its webhook secret when it has none; never the
secrets themselves). Every HTTP call the write-back makes takes from it (a helpdesk's write
may be a read, a PUT and more), and each record's writes are also limited per
record when the source asks (``record_window``, shared through ``write_limiters``).
Then the job asks to run again when the next row is due.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import structlog

from connectors.planhat.errors import PlanhatError, RateLimitedError
from connectors.source import NoBudget, PrepareContext, WriteBackContext, WritesBack
from connectors.sources import SOURCES, OptionError, credentials_of, source_options
from connectors.tls import tls
from state.connections import LockedConnectionError, Tenant
from worker.intake.reconcile import reconcile, synced_models
from worker.pipeline.write_back import WriteBackReport, due, postpone, write_back_batch
from worker.runtime.jobs import MAX_COUNTDOWN, PACE_SLEEP, Runtime
from worker.runtime.ratelimit import budget_key, budget_taker, metered
from worker.runtime.settings import MissingTokenError

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
    # Per credential: connections sharing one account share its budget (the webhook
    # secret names the credential only of a source that has no other).
    identity = sorted(credentials.items()) if credentials else secret
    budget = budget_key(json.dumps(["write-back", name, identity]))
    limiter = rt.write_limiters.get(source.write_rate_per_minute)
    windows = rt.write_limiters.windows
    policy = rt.config.policy()
    reports = []
    hooks = metered(limiter, budget, max_wait=policy.max_budget_wait)
    with (
        httpx.Client(
            verify=tls(), timeout=TIMEOUT, follow_redirects=False, event_hooks=hooks
        ) as http,
        _planhat(rt, tenant.name) as planhat,
    ):
        context = WriteBackContext(
            connection=tenant.name,
            credentials=credentials,
            api_base=rt.apis.base(name),
            secret=secret,
            options=options,
            http=http,
            record_window=lambda record, limit, window: windows.try_take(
                f"{budget}:{record}", limit, window
            ),
            planhat=planhat,
        )
        while True:
            report = write_back_batch(
                rt.engine, source, context, limiter, budget, name=name, policy=policy,
                metered=True,
            )  # fmt: skip
            reports.append(report)
            if report.stopped or not report.full:
                return reports


@contextmanager
def _planhat(rt: Runtime, connection: str) -> Iterator[PrepareContext | None]:
    """Planhat for a write-back that looks something up there (in the token's budget,
    with the connection's prepare memo); None when the connection has no Planhat token."""
    try:
        lease = rt.clients.lease(connection)
    except (LookupError, MissingTokenError):
        yield None
        return
    with lease as (planhat, budget):
        take = budget_taker(rt.limiter, budget, max_wait=rt.config.max_budget_wait)
        memo = rt.prepare_memo.get(connection)
        yield PrepareContext(connection=connection, planhat=planhat, take_budget=take, memo=memo)


def run_reconcile(rt: Runtime) -> int:
    """Scan every model each connection syncs back for changes no automation brought
    (``worker/intake/reconcile.py``). Returns how many events were new."""
    new = 0
    connections = rt.clients.connections
    for name in connections.names():
        try:
            tenant = connections.get(name)
        except LockedConnectionError:  # logged by Connections; the others still scan
            continue
        models = synced_models(tenant) if tenant is not None else []
        if not models:
            continue
        try:
            lease = rt.clients.lease(name)
        except (LookupError, MissingTokenError) as error:
            log.warning("reconcile.no_planhat", connection=name, error=str(error))
            continue
        with lease as (planhat, budget):
            take = budget_taker(rt.limiter, budget, max_wait=rt.config.max_budget_wait)
            for model in models:
                try:
                    new += reconcile(rt.engine, planhat, take, name, model,
                                     lookback=rt.config.reconcile_lookback,
                                     submit=rt.dispatcher.ingest)  # fmt: skip
                except RateLimitedError as error:  # every worker on the token waits
                    rt.limiter.pause(budget, error.retry_after)
                    break
                except (NoBudget, PlanhatError) as error:  # the next scan starts there again
                    log.warning("reconcile.failed", connection=name, model=model,
                                error=str(error))  # fmt: skip
                    break
    return new


def _later(rt: Runtime, connection: str) -> None:
    ready, wait = due(rt.engine, connection)
    if ready:  # arrived while this run wrote
        rt.dispatcher.write_back(connection, 0.0)
    elif wait is not None:
        rt.dispatcher.write_back(connection, min(MAX_COUNTDOWN, wait))
