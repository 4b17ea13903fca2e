"""The embedded default serves a burst first: while webhooks arrive faster than
``PLANHAT_SYNC_EMBEDDED_BURST_RATE`` a second, its ingest and flushes wait (at most
``PLANHAT_SYNC_EMBEDDED_BURST_WAIT`` seconds), then one flush sends what came."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import sandbox_stats
from tests.engine.two_way import FAST, TwoWay, two_way
from tests.planhat.sandbox_http import Start

# Any sending rate of a test is a burst at 5 a second.
BURSTY = FAST.model_copy(update={"embedded_burst_rate": 5.0, "embedded_burst_wait": 60.0})


def _send_for(sync: TwoWay, seconds: float) -> int:
    sent, until = 0, time.monotonic() + seconds
    while time.monotonic() < until:
        fields = {"name": f"Company {sent}", "externalId": f"co-{sent}"}
        assert sync.send("companies", f"co-{sent}", 1, fields).status_code == 202
        sent += 1
    return sent


def _writes(sync: TwoWay) -> int:
    return int(sandbox_stats(sync.sandbox)["by_route"].get("PUT /companies", 0))


def test_no_flush_while_a_burst_comes_in_then_one_sends_it_all(
    start_sandbox: Start, tmp_path: Path
) -> None:
    with two_way(start_sandbox, tmp_path, config=BURSTY) as sync:
        sent = _send_for(sync, 2.0)  # 40 times the flush's linger
        during = _writes(sync)
        sync.drain()
        after = _writes(sync)
        companies = list(sync.planhat.list("companies"))

    assert sent > 10
    assert during == 0
    assert after == 1  # all of them in one bulk call
    assert len(companies) == sent


def _pending(sync: TwoWay) -> int:
    return sum(1 for event in sync.events("standard") if event.status == "pending")


def test_nothing_is_ingested_while_a_burst_comes_in(start_sandbox: Start, tmp_path: Path) -> None:
    with two_way(start_sandbox, tmp_path, config=BURSTY) as sync:
        sent = _send_for(sync, 2.0)
        during = _pending(sync)
        sync.drain()
        after = _pending(sync)

    assert sent > 10
    # Every one committed and acknowledged, none ingested but the first one or two: a lone
    # webhook does not look like a burst.
    assert during >= sent - 2
    assert after == 0


def test_a_burst_holds_ingest_no_longer_than_the_wait(start_sandbox: Start, tmp_path: Path) -> None:
    config = BURSTY.model_copy(update={"embedded_burst_wait": 0.5})
    with two_way(start_sandbox, tmp_path, config=config) as sync:
        sent = _send_for(sync, 3.0)
        during = _pending(sync)
        sync.drain()

    assert during < sent / 2  # past the wait, ingest ran while the stream went on


def test_a_burst_holds_a_flush_no_longer_than_the_wait(
    start_sandbox: Start, tmp_path: Path
) -> None:
    config = BURSTY.model_copy(update={"embedded_burst_wait": 0.5})
    with two_way(start_sandbox, tmp_path, config=config) as sync:
        _send_for(sync, 3.0)
        during = _writes(sync)
        sync.drain()

    assert during >= 1  # the stream went on; the flush did not wait for its end


def test_a_trickle_is_flushed_at_the_linger(start_sandbox: Start, tmp_path: Path) -> None:
    config = FAST.model_copy(update={"embedded_burst_rate": 1000.0})
    with two_way(start_sandbox, tmp_path, config=config) as sync:
        _send_for(sync, 1.5)
        time.sleep(0.5)  # ten lingers: the flush has gone, no burst held it
        during = _writes(sync)
        sync.drain()

    assert during >= 1
