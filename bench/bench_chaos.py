"""Benchmark: do poison events on one tenant slow the others? Drain times with and without.

    .venv/bin/python bench/bench_chaos.py --runs 2

Runs the chaos workload of tests/engine/chaos.py (2,000 events over 500 records for three
tenants; Planhat failing one call in five and the first tenant's in a 429 storm) on
PostgreSQL + Redis with two workers and beat as processes, once with 1% poison events on
the first tenant and once without, alternating, and prints how long each tenant took to
be fully in sync in its Planhat (from the first event sent). The naive baseline beside it
is the run without poison: the healthy tenants should drain within 1.2 times it.

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.planhat.sandbox import SandboxConfig  # noqa: E402
from connectors.planhat.sandbox.server import BackgroundSandbox  # noqa: E402
from tests.engine.chaos import TENANTS, good_events, mix, poison, tenant_done  # noqa: E402
from tests.engine.harness import RedisServer, fresh_deployment, send_events  # noqa: E402
from tests.engine.test_e2e_chaos import CHAOS_ENV, add_tenants  # noqa: E402
from worker.runtime import logs  # noqa: E402


def one_run(with_poison: bool, seed: int, deadline: float = 300.0) -> dict[str, float]:
    """Seconds from the first event sent until each tenant's Planhat is in sync."""
    sandboxes = {
        tenant: BackgroundSandbox(
            SandboxConfig(rate_per_minute=1e9, burst=10**6, fail_rate=0.2, seed=seed + n)
        ).start()
        for n, tenant in enumerate(TENANTS)
    }
    redis = RedisServer()
    redis.start()
    logs = Path(tempfile.mkdtemp(prefix="phs-chaos-"))
    events = mix(good_events(seed), poison(20) if with_poison else [], seed + 1)
    done: dict[str, float] = {}
    try:
        first = sandboxes[TENANTS[0]].url
        with fresh_deployment(redis, first, logs, CHAOS_ENV) as system:
            add_tenants(system, sandboxes)
            system.start_worker("worker-1")
            system.start_worker("worker-2")
            system.start("beat", "beat", "--loglevel", "warning")
            time.sleep(3)  # the workers connect before the clock starts
            started = time.monotonic()
            send_events(system.database_url, system.redis.url, events)
            httpx.post(f"{first}/_sandbox/faults", json={"rate_limit_storm_s": 3})
            while len(done) < len(TENANTS) and time.monotonic() - started < deadline:
                for tenant in TENANTS:
                    if tenant not in done and tenant_done(sandboxes[tenant].url, tenant):
                        done[tenant] = time.monotonic() - started
                time.sleep(0.25)
    finally:
        redis.stop()
        for sandbox in sandboxes.values():
            sandbox.stop()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs of each kind, alternating")
    args = parser.parse_args()
    logs.configure("warning")  # the checks' own Planhat calls are not the news here
    times: dict[bool, dict[str, list[float]]] = {True: {}, False: {}}
    for run in range(args.runs):
        for with_poison in (False, True):
            done = one_run(with_poison, seed=10 + run)
            label = "with poison   " if with_poison else "without poison"
            shown = "  ".join(f"{t} {done.get(t, float('nan')):.1f} s" for t in TENANTS)
            print(f"run {run + 1} {label}: {shown}", flush=True)
            for tenant, seconds in done.items():
                times[with_poison].setdefault(tenant, []).append(seconds)
    print("\nmedian drain, seconds from the first event (without poison is the baseline):")
    for tenant in TENANTS:
        clean = statistics.median(times[False].get(tenant, [float("nan")]))
        poisoned = statistics.median(times[True].get(tenant, [float("nan")]))
        role = "poisoned" if tenant == TENANTS[0] else "healthy "
        print(f"  {tenant} ({role}): {poisoned:.2f} s with poison, {clean:.2f} s without, "
              f"ratio {poisoned / clean:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
