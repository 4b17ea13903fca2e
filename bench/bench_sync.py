"""Benchmark: signed webhook bursts through planhat-sync into a rate-limited Planhat sandbox.

    .venv/bin/python bench/bench_sync.py --mode redis    --events 10000 --records 1000
    .venv/bin/python bench/bench_sync.py --mode embedded --events 10000 --records 1000

Prints the receiver's acceptance rate and p50/p99 acknowledgement latency beside a bare
verify-and-202 endpoint's (``bench/bare.py``: same server, process count and load
generator, measured in the same run once the drain is over), the end-to-end
drain time, Planhat calls per 1,000 events, the same for a naive baseline (one Planhat
call per event through the same client, measured on a sample and projected at the rate
limit), and the physical limit (calls needed at 5,000 records a call ÷ the rate limit).

Everything runs on 127.0.0.1 and stops by itself: a Redis and a PostgreSQL database of its
own (redis mode), the sandbox with Planhat's limits (200 calls/min, bursts of 50), the
receiver, workers (two unless ``--workers``) and beat as processes, and the load generator here.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.planhat.client import PlanhatClient  # noqa: E402
from connectors.standard.verify import sign  # noqa: E402
from tests.engine.harness import (  # noqa: E402
    RedisServer,
    drained,
    engine_state,
    free_port,
    postgres_database,
    wait_until,
)

EXE = str(Path(sys.executable).with_name("planhat-sync"))
RATE_PER_MINUTE = 200
BURST = 50
MODELS = ("companies", "licenses", "nps")


def events(count: int, records: int, secret: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """``count`` signed standard events spread over ``records`` records of three models."""
    out = []
    per_model = max(1, records // len(MODELS))
    for n in range(count):
        model = MODELS[n % len(MODELS)]
        i = (n // len(MODELS)) % per_model
        version = n // records + 1
        fields: dict[str, Any] = {
            "companies": {"name": f"Company {i}", "phone": str(version)},
            "licenses": {
                "companyId": f"srcid-companies-{i}",
                "_currency": "USD",
                "mrr": version,
                "fromDate": "2026-01-01",
            },
            "nps": {
                "cId": f"srcid-companies-{i}",
                "email": f"u{i}@example.com",
                "score": version % 11,
            },
        }[model]
        body = json.dumps(
            {
                "model": model,
                "key": {"sourceId": f"{model}-{i}"},
                "fields": fields,
                "version": version,
            }
        ).encode()
        event_id = f"bench-{uuid.uuid4()}"
        out.append((event_id, body, {}))
    return out


def raw_requests(
    port: int, secret: str, burst: list[tuple[str, bytes, dict[str, str]]]
) -> list[bytes]:
    """Each event as the bytes of a signed HTTP/1.1 request, built before the clock starts
    (signing is the sender's work, not the receiver's)."""
    stamp = int(time.time())
    out = []
    for event_id, body, _ in burst:
        head = (
            f"POST /webhooks/default/standard HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"webhook-id: {event_id}\r\nwebhook-timestamp: {stamp}\r\n"
            f"webhook-signature: {sign(secret, event_id, stamp, body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


Fired = tuple[float, float, float, int]  # seconds, p50 and p99 latency (s), non-2xx answers


def fire(port: int, requests: list[bytes], concurrency: int, sender: str) -> Fired:
    """Send every request once over ``concurrency`` keep-alive connections, with the
    Python sender or with wrk (``bench/wrk_send.lua``). wrk costs the machine a fraction of
    the Python sender's CPU, which on two cores is CPU the servers measured don't get."""
    if sender == "wrk":
        return fire_wrk(port, requests, concurrency)
    seconds, latencies, failures = asyncio.run(fire_python(port, requests, concurrency))
    return seconds, percentile(latencies, 50), percentile(latencies, 99), failures


def fire_wrk(port: int, requests: list[bytes], concurrency: int) -> Fired:
    with tempfile.NamedTemporaryFile(suffix=".requests") as batch:
        batch.write(b"".join(request + b"\0" for request in requests))
        batch.flush()
        wrk = subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                "-d3600s",
                "-s",
                str(ROOT / "bench" / "wrk_send.lua"),
                f"http://127.0.0.1:{port}",
                "--",
                batch.name,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert wrk.stdout is not None
        lines = iter(wrk.stdout.readline, "")
        elapsed = next(line for line in lines if line.startswith("ELAPSED "))
        wrk.send_signal(signal.SIGINT)  # wrk runs for -d regardless; on SIGINT it reports
        result = next(line for line in lines if line.startswith("RESULT "))
        print("  wrk:", next(lines, "").strip(), flush=True)
        wrk.wait(timeout=30)
    micros = int(elapsed.split()[1])
    answered, p50, p99, failures = (int(part) for part in result.split()[1:])
    assert answered >= len(requests), result
    return micros / 1e6, p50 / 1e6, p99 / 1e6, failures


async def fire_python(
    port: int, requests: list[bytes], concurrency: int
) -> tuple[float, list[float], int]:
    """Send every request over ``concurrency`` keep-alive connections; (seconds,
    latencies, non-2xx answers). A bare asyncio client: httpx's own overhead (~2 ms a
    request) would measure the load generator instead of the receiver."""
    latencies: list[float] = []
    failures = 0
    pending = list(reversed(requests))

    async def sender() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while pending:
                request = pending.pop()
                started = time.perf_counter()
                writer.write(request)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not status_line.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                    failures += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, failures


def ingested(database_url: str) -> bool:
    return engine_state(database_url)["pending"] == 0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def planhat_requests(url: str) -> int:
    return int(httpx.get(f"{url}/_sandbox/stats").json()["requests"])


def planhat_routes(url: str) -> dict[str, int]:
    return dict(httpx.get(f"{url}/_sandbox/stats").json()["by_route"])


def wait_http(url: str, timeout: float = 30) -> None:
    wait_until(lambda: _answers(url), timeout=timeout, what=url)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.TransportError:
        return False


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [EXE, *args],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)


def bare_endpoint(
    requests: list[bytes], secret: str, processes: int, concurrency: int, logs: Path, sender: str
) -> Fired:
    """The same requests, sender and server against ``bench/bare.py``."""
    port = free_port()
    env = dict(os.environ) | {"STANDARD_WEBHOOK_SECRET": secret, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare:create_app",
            "--factory",
            "--port",
            str(port),
            "--workers",
            str(processes),
            "--http",
            "worker.intake.serving:GuardedHttpToolsProtocol",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        cwd=ROOT,
        stdout=(logs / "bare.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        time.sleep(1.0)
        return fire(port, requests, concurrency, sender)  # its Host header is not read
    finally:
        stop([server])


def naive_baseline(sample: list[tuple[str, bytes, dict[str, str]]], logs: Path) -> dict[str, float]:
    """One Planhat call per event through the same client, against the same limits."""
    port = free_port()
    sandbox = start(
        [
            "sandbox",
            "--port",
            str(port),
            "--rate-per-minute",
            str(RATE_PER_MINUTE),
            "--burst",
            str(BURST),
        ],
        dict(os.environ),
        logs / "baseline-sandbox.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_sandbox/stats")
        started = time.perf_counter()
        with PlanhatClient("naive", base_url=url) as planhat:
            for _, body, _ in sample:
                event = json.loads(body)
                record = {**event["fields"], **event["key"]}
                planhat.bulk_upsert(event["model"], [record])
        seconds = time.perf_counter() - started
        calls = planhat_requests(url)
    finally:
        stop([sandbox])
    return {"events": len(sample), "seconds": seconds, "calls": calls}


def run(
    mode: str,
    count: int,
    records: int,
    concurrency: int,
    baseline_sample: int,
    web_workers: int = 2,
    worker_concurrency: int = 1,
    workers: int = 2,
    sender: str = "python",
    warmup: int = 0,
) -> None:
    logs = Path(tempfile.mkdtemp(prefix="phs-bench-"))
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    burst = events(count, records, secret)
    processes: list[subprocess.Popen[bytes]] = []
    redis_server: RedisServer | None = None
    database = postgres_database() if mode == "redis" else None
    try:
        web_port, sandbox_port = free_port(), free_port()
        # The engine's settings (PLANHAT_SYNC_*) pass through, to compare them; never a
        # real tenant's token or a database of the caller's.
        env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith("PLANHAT_SYNC_") or not k.startswith(("PLANHAT", "DATABASE"))
        }
        env |= {"STANDARD_WEBHOOK_SECRET": secret, "PLANHAT_SYNC_LOG_LEVEL": "warning"}
        if mode == "redis":
            assert database is not None
            database_url = database.__enter__()
            redis_server = RedisServer()
            redis_server.start()
            planhat = f"http://127.0.0.1:{sandbox_port}"
            env |= {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_server.url,
                "PLANHAT_BASE_URL": planhat,
                "PLANHAT_SYNC_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            }
            processes.append(
                start(
                    [
                        "sandbox",
                        "--port",
                        str(sandbox_port),
                        "--rate-per-minute",
                        str(RATE_PER_MINUTE),
                        "--burst",
                        str(BURST),
                    ],
                    env,
                    logs / "sandbox.log",
                )
            )
            processes.append(
                start(
                    ["web", "--port", str(web_port), "--workers", str(web_workers)],
                    env,
                    logs / "web.log",
                )
            )
            for n in range(workers):
                processes.append(
                    start(
                        [
                            "worker",
                            "--concurrency",
                            str(worker_concurrency),
                            "--loglevel",
                            "warning",
                            f"--hostname=bench{n}@%h",
                        ],
                        env,
                        logs / f"worker{n}.log",
                    )
                )
            if workers:  # --workers 0: the receiver alone, as with workers on other machines
                beat = ["beat", "--loglevel", "warning", "--schedule", str(logs / "beat-schedule")]
                processes.append(start(beat, env, logs / "beat.log"))
        else:
            data = logs / "data"
            database_url = f"sqlite:///{data / 'state.db'}"
            planhat = f"http://127.0.0.1:{web_port + 1}"
            processes.append(
                start(
                    ["dev", "--port", str(web_port), "--data-dir", str(data)], env, logs / "dev.log"
                )
            )
        wait_http(f"{planhat}/_sandbox/stats")
        wait_http(f"http://127.0.0.1:{web_port}/healthz")
        if mode == "embedded":  # dev's own demo (Zendesk's included) done: it says Serving
            log = logs / "dev.log"
            wait_until(lambda: "Serving" in log.read_text(), timeout=120, what="dev's demo")
        if warmup:  # a server as it runs: code paths taken, pools filled, statements compiled
            warm = [
                (
                    f"warmup-{uuid.uuid4()}",
                    json.dumps(
                        {
                            "model": "companies",
                            "key": {"sourceId": f"warmup-{n % 50}"},
                            "fields": {"name": f"Warm-up {n % 50}"},
                            "version": n + 1,
                        }
                    ).encode(),
                    {},
                )
                for n in range(warmup)
            ]
            fire(web_port, raw_requests(web_port, secret, warm), concurrency, sender)
            if workers or mode == "embedded":
                wait_until(lambda: drained(database_url), timeout=300, what="the warm-up")
        time.sleep(1.0)
        calls_before = planhat_requests(planhat)
        routes_before = planhat_routes(planhat)
        requests = raw_requests(web_port, secret, burst)

        started = time.perf_counter()
        seconds, p50, p99, failures = fire(web_port, requests, concurrency, sender)
        acknowledged = time.perf_counter()
        load = os.getloadavg()
        if workers or mode == "embedded":
            # Ingested: no event pending in the inbox (all turned into outbox rows).
            wait_until(lambda: ingested(database_url), timeout=900, what="the ingest", every=0.05)
            ingest_done = time.perf_counter()
            wait_until(lambda: drained(database_url), timeout=900, what="the drain", every=0.05)
            finished = time.perf_counter()
        else:
            ingest_done = finished = time.perf_counter()
        calls = planhat_requests(planhat) - calls_before
        routes = {
            route: count - routes_before.get(route, 0)
            for route, count in planhat_routes(planhat).items()
            if count != routes_before.get(route, 0)
        }
        bare_seconds, bare_p50, bare_p99, bare_failures = bare_endpoint(
            requests, secret, web_workers if mode == "redis" else 1, concurrency, logs, sender
        )
        bare_load = os.getloadavg()
    finally:
        stop(processes)
        if redis_server is not None:
            redis_server.stop()
        if database is not None and mode == "redis":
            database.__exit__(None, None, None)

    physical_calls = sum(math.ceil(min(records // len(MODELS), count) / 5000) for _ in MODELS)
    physical = physical_calls / (RATE_PER_MINUTE / 60)
    baseline = naive_baseline(burst[:baseline_sample], logs)
    naive_per_1000 = baseline["calls"] / baseline["events"] * 1000
    naive_drain = count / (RATE_PER_MINUTE / 60)  # one call per event at the rate limit
    shape = (
        f"{web_workers} receiver process(es), {workers} worker(s) x {worker_concurrency}"
        if mode == "redis"
        else "one planhat-sync dev process (SQLite, in-process queue)"
    )
    print(
        f"mode {mode}: {count} events over {records} records of {len(MODELS)} models, "
        f"{concurrency} concurrent senders ({sender}), {warmup} warm-up events, {shape}; "
        f"logs in {logs}"
    )
    print(
        f"  receiver: {count / seconds:,.0f} accepted events/s, p50 {p50 * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, "
        f"{failures} not accepted (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    print(
        f"  bare verify-and-202 endpoint, same run: {count / bare_seconds:,.0f} events/s, "
        f"p50 {bare_p50 * 1000:.1f} ms, p99 {bare_p99 * 1000:.1f} ms, "
        f"{bare_failures} not accepted (load average {bare_load[0]:.2f} {bare_load[1]:.2f} "
        f"{bare_load[2]:.2f})"
    )
    print(f"  receiver ÷ bare: {bare_seconds / seconds:.2f}")
    if not workers and mode == "redis":
        print("  no workers (--workers 0): the receiver alone; nothing ingested or sent")
        return
    print(
        f"  ingest: {count / (ingest_done - started):,.0f} events/s from the first event, "
        f"done {ingest_done - acknowledged:.1f} s after the last acknowledgement"
    )
    print(
        f"  drain: {finished - started:.1f} s from the first event, "
        f"{finished - acknowledged:.1f} s after the last acknowledgement"
    )
    print(
        f"  Planhat calls: {calls} in all, {calls / count * 1000:.2f} per 1,000 events "
        f"({', '.join(f'{route} {n}' for route, n in sorted(routes.items()))})"
    )
    print(
        f"  physical limit: {physical_calls} calls at 5,000 a call ÷ {RATE_PER_MINUTE}/min "
        f"= {physical:.2f} s"
    )
    print(
        f"  naive baseline (one call per event, measured on {baseline['events']:.0f} events): "
        f"{naive_per_1000:.0f} calls per 1,000 events, {baseline['seconds']:.1f} s for the sample; "
        f"{count} events would take {naive_drain / 60:.1f} min at the rate limit"
    )
    print(
        "  calls per 1,000 events, naive ÷ planhat-sync: "
        f"{naive_per_1000 / (calls / count * 1000):,.0f} times"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["redis", "embedded"], default="redis")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent senders")
    parser.add_argument("--baseline-sample", type=int, default=120)
    parser.add_argument("--web-workers", type=int, default=2, help="receiver processes")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (redis mode)")
    parser.add_argument("--worker-concurrency", type=int, default=1, help="per worker")
    parser.add_argument(
        "--sender",
        choices=["python", "wrk"],
        default="python",
        help="load generator: the asyncio one here, or wrk (apt install wrk)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="events sent (and drained) before the measured burst, on other records",
    )
    args = parser.parse_args()
    run(
        args.mode,
        args.events,
        args.records,
        args.concurrency,
        args.baseline_sample,
        args.web_workers,
        args.worker_concurrency,
        args.workers,
        args.sender,
        args.warmup,
    )


if __name__ == "__main__":
    main()
