"""``/metrics`` after a known run agrees with the state store and with what the Planhat
sandbox counted: 1,000 signed events through the embedded engine (as ``planhat-sync dev``
serves it), each a company of its own, a few delivered twice, one the source would not
sign, one to a connection that does not exist."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func
from sqlmodel import select

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from connectors.standard.verify import signed_headers
from state.db import session_scope
from state.tables import InboxEvent, RecordState
from tests import stand_in_http
from tests.conftest import sandbox_stats
from tests.engine.harness import standard
from tests.engine.two_way import STANDARD_SECRET, two_way

EVENTS, TWICE = 1_000, 10
SENDERS = 16
DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of ``/metrics``, parsed by Prometheus's own text parser."""
    answer = stand_in_http.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def test_metrics_agree_with_the_state_store_after_a_known_run(
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox], tmp_path: Path
) -> None:
    with two_way(start_sandbox, tmp_path) as sync:
        # The counters are the process's: other tests in it counted too, so compare deltas.
        before = scrape(sync.receiver.url)

        # given 1,000 signed events, each a new company, a few delivered a second time,
        # and one whose signature is wrong
        url = f"{sync.receiver.url}/webhooks/default/standard"
        bodies = [
            (f"metrics-{n}", standard("companies", f"m-{n}", 1, {"name": f"Company {n}"}))
            for n in range(EVENTS)
        ]
        with httpx.Client(timeout=10, limits=httpx.Limits(max_connections=SENDERS)) as http:

            def post(event: tuple[str, bytes]) -> int:
                headers = signed_headers(STANDARD_SECRET, event[0], event[1], int(time.time()))
                return http.post(url, content=event[1], headers=headers).status_code

            # Many at once, as a source's retries and bursts arrive: one commit for many.
            with ThreadPoolExecutor(SENDERS) as senders:
                statuses = list(senders.map(post, bodies))
            statuses += [post(event) for event in bodies[:TWICE]]
            forged = signed_headers("whsec_" + "A" * 32, "forged", bodies[0][1], int(time.time()))
            statuses.append(http.post(url, content=bodies[0][1], headers=forged).status_code)
            stranger = url.replace("/default/", "/nobody-we-know/")
            statuses.append(http.post(stranger, content=bodies[0][1], headers=forged).status_code)
        assert statuses == [202] * EVENTS + [200] * TWICE + [401, 404]

        # when the engine has sent everything to Planhat
        sync.drain()
        after = scrape(sync.receiver.url)

        def delta(name: str, **labels: str) -> float:
            return total(after, name, **labels) - total(before, name, **labels)

        with session_scope(sync.engine) as session:
            stored = session.exec(select(func.count()).select_from(InboxEvent)).one()
            done = session.exec(
                select(func.count()).where(InboxEvent.status == "done").select_from(InboxEvent)
            ).one()
            records = session.exec(select(func.count()).select_from(RecordState)).one()
        planhat_requests = sandbox_stats(sync.sandbox)["requests"]

    # then the receiver's counts are the inbox's
    mine = {"connection": "default", "source": "standard"}
    assert delta("planhat_sync_events_total", outcome="accepted", **mine) == stored == EVENTS
    assert delta("planhat_sync_events_total", outcome="duplicate", **mine) == TWICE
    # a refusal after the tenant is known keeps its labels; the acknowledgements were timed
    assert delta("planhat_sync_events_total", outcome="refused", **mine) == 1
    acked = delta("planhat_sync_webhook_ack_seconds_count", source="standard")
    assert acked == EVENTS + TWICE + 2
    # an unknown connection's name is never a label: anyone could make up millions
    assert delta("planhat_sync_events_total", connection="", outcome="refused") == 1
    # and ingest's are the events marked done, each one change queued
    assert delta("planhat_sync_events_total", outcome="done", **mine) == done == EVENTS
    assert delta("planhat_sync_changes_total", outcome="queued", **mine) == EVENTS
    # and every record Planhat confirmed is applied, with one lag observed for each
    applied = delta("planhat_sync_records_total", outcome="applied", connection="default")
    assert applied == records == EVENTS
    lag_count = delta("planhat_sync_lag_seconds_count", connection="default", model="companies")
    assert lag_count == records
    assert delta("planhat_sync_lag_seconds_sum", connection="default") > 0
    # and every call the sandbox answered was timed, none of them a 429
    assert delta("planhat_sync_planhat_call_seconds_count") == planhat_requests > 0
    assert delta("planhat_sync_planhat_call_seconds_count", outcome="rate_limited") == 0
    # and the gauges, read from the state store, say nothing is left
    assert after[("planhat_sync_state_store_up", ())] == 1
    assert total(after, "planhat_sync_backlog", connection="default") == 0
    assert total(after, "planhat_sync_oldest_pending_seconds", connection="default") == 0
    assert total(after, "planhat_sync_dead_letters", connection="default") == 0
    # and no label carries a record key or an event id
    values = {value for _, labels in after for _, value in labels}
    assert not any(value.startswith(("m-", "metrics-", "nobody")) for value in values)
    # and every series the Grafana dashboard asks for is served
    assert dashboard_series() <= {name for name, _ in after}


def dashboard_series() -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = " ".join(target["expr"] for panel in panels for target in panel["targets"])
    return set(re.findall(r"planhat_sync_\w+", queries))
