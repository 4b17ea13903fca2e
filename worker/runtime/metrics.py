"""Prometheus metrics: what the engine counts and times, wherever it runs.

Counters and histograms live in prometheus_client's default registry of the process that
records them. Where a process's numbers are read depends on the deployment:

- embedded (``planhat-sync dev``): one process; ``/metrics`` reads its registry;
- production: the receiver's processes (uvicorn ``--workers``) and the Celery worker's
  prefork children each count on their own, and none of the children serves HTTP. With
  ``PROMETHEUS_MULTIPROC_DIR`` set (before the process starts: prometheus_client picks
  its storage at import), every process writes its values to files there, and
  ``/metrics`` adds up the files of every process on that machine (the library's
  documented multiprocess mode, as gunicorn deployments run it). Compose shares one
  volume between ``web`` and ``worker``; the directory is emptied at each deployment.
  Without it, ``/metrics`` shows only the answering process's own numbers.

Gauges that must be right across processes and machines (backlog, oldest pending age,
dead letters) are not recorded anywhere: ``metrics_state.StateCollector`` reads them from
the state store at scrape time.

Labels are bounded sets only: connection (a stored tenant, never a name from an unchecked
URL), source (a registered one), model, outcome. Never a record key or an event id.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Histogram, values

from connectors.planhat.models import MODELS

# In multiprocess mode each process writes files named by its identifier, by default its
# pid. Containers sharing the directory (compose: web and worker) have pid namespaces of
# their own, where pid 7 of one and pid 7 of the other would write the same file: the
# host name (a container's id) goes in front. No "_": the library splits file names on it.
_HOST = socket.gethostname().replace("_", "-")
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    values.ValueClass = values.MultiProcessValue(  # type: ignore[no-untyped-call]  # untyped upstream
        lambda: f"{_HOST}-{os.getpid()}"
    )

# Where a webhook's acknowledgement lands: a few ms when the database is quick, up to the
# receiver's database wait (5 s) when it is not.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Received -> confirmed by Planhat: a linger and a call at best, hours behind a 429 storm.
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
# One HTTP call to Planhat: a small GET, up to a 5,000-record bulk upsert.
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

EVENTS = Counter(
    "planhat_sync_events",
    "Events by what became of them: at the receiver (accepted, duplicate, refused, "
    "unavailable), then at ingest (done, ignored, dead).",
    ["connection", "source", "outcome"],
)
CHANGES = Counter(
    "planhat_sync_changes",
    "Changes mapped from events, by the diff's verdict (queued, stale, unchanged, echo, "
    "overruled, tombstoned, quarantined, write_back...).",
    ["connection", "source", "outcome"],
)
RECORDS = Counter(
    "planhat_sync_records",
    "Records a flush settled: applied (confirmed by Planhat), dead, dropped (nothing to "
    "send any more), deleted.",
    ["connection", "model", "outcome"],
)
ACK_SECONDS = Histogram(
    "planhat_sync_webhook_ack_seconds",
    "Time from a webhook's arrival to its answer, by source and outcome.",
    ["source", "outcome"],
    buckets=ACK_BUCKETS,
)
LAG_SECONDS = Histogram(
    "planhat_sync_lag_seconds",
    "End-to-end lag of each record Planhat confirmed: from receipt of the event whose "
    "change was sent to the settle of Planhat's answer.",
    ["connection", "model"],
    buckets=LAG_BUCKETS,
)
PLANHAT_CALL_SECONDS = Histogram(
    "planhat_sync_planhat_call_seconds",
    "Each HTTP call to Planhat (every try), by model and outcome (ok, rate_limited, error).",
    ["model", "outcome"],
    buckets=CALL_BUCKETS,
)

UNKNOWN = ""  # the label of a connection or source that was not (yet) known to exist
RECEIVER_OUTCOMES = {202: "accepted", 200: "duplicate", 503: "unavailable"}


def receiver_outcome(status: int) -> str:
    return RECEIVER_OUTCOMES.get(status, "refused")


def webhook_answered(connection: str, source: str, status: int, seconds: float) -> None:
    """One webhook answered. ``connection`` and ``source`` must already be known to exist
    (else ``UNKNOWN``): a URL anyone can post to must not create label values."""
    outcome = receiver_outcome(status)
    EVENTS.labels(connection, source, outcome).inc()
    ACK_SECONDS.labels(source, outcome).observe(seconds)


def event_ingested(connection: str, source: str, status: str, verdicts: Mapping[str, int]) -> None:
    """An event's ingest committed: its status (done, ignored, dead) and its changes'
    verdicts."""
    if status:
        EVENTS.labels(connection, source, status).inc()
    for verdict, count in verdicts.items():
        if count:
            CHANGES.labels(connection, source, str(verdict)).inc(count)


def records_settled(connection: str, model: str, outcomes: Mapping[str, int]) -> None:
    for outcome, count in outcomes.items():
        if count:
            RECORDS.labels(connection, model, outcome).inc(count)


def records_confirmed(connection: str, model: str, lags: Iterable[float]) -> None:
    """Planhat confirmed these records (committed): each one's seconds since receipt."""
    histogram = LAG_SECONDS.labels(connection, model)
    for lag in lags:
        histogram.observe(max(0.0, lag))


def planhat_call(method: str, path: str, outcome: str, seconds: float) -> None:
    """``connectors.planhat.client.CallObserver``: the model is the path's first part when
    it names a Planhat model (never an id from the path)."""
    del method  # the model and outcome say enough; PUT vs GET would double the series
    first = path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
    model = first if first in MODELS else "other"
    PLANHAT_CALL_SECONDS.labels(model, outcome).observe(seconds)
