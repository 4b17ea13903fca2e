"""Benchmark: a steady stream of signed webhooks, and how soon each change is in Planhat.

    .venv/bin/python bench/bench_steady.py --rate 100 --seconds 60 --records 1000

Sends ``--rate`` signed ``standard`` events a second for ``--seconds`` over ``--records``
records (companies, licenses and NPS in turn, each event a newer version of its record),
through the same processes as ``bench_sync.py --mode redis`` (PostgreSQL, Redis, the
receiver with 2 processes, 2 workers, beat, the sandbox at 200 calls/min, bursts of 50).
For a sample of the company and license events it measures the time from the webhook's
acknowledgement until the sandbox holds that version (or a newer one), reading the
sandbox's own SQLite file every 50 ms, so reading back costs no Planhat call. Prints
p50/p90/p99/max of that, Planhat calls a minute, 429s answered, and the RSS of the
receiver and the workers (each with its children) at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from bench_sync import (
    EXE,
    percentile,
    raw_requests,
    start,
    stop,
    wait_http,
)

from tests.engine.harness import RedisServer, drained, free_port, postgres_database, wait_until

MODELS = ("companies", "licenses", "nps")
SAMPLE_EVERY_S = 0.1  # one sampled event every 100 ms


def stream(count: int, records: int) -> list[tuple[str, bytes, dict[str, str]]]:
    out = []
    per_model = max(1, records // len(MODELS))
    for n in range(count):
        model, i, version = MODELS[n % 3], (n // 3) % per_model, n // records + 1
        fields = {
            "companies": {"name": f"Company {i}", "phone": str(version)},
            "licenses": {"companyId": f"srcid-companies-{i}", "_currency": "USD",
                         "mrr": version, "fromDate": "2026-01-01"},
            "nps": {"cId": f"srcid-companies-{i}", "email": f"u{i}@example.com",
                    "score": version % 11},
        }[model]  # fmt: skip
        body = {"model": model, "key": {"sourceId": f"{model}-{i}"}, "fields": fields,
                "version": version}  # fmt: skip
        out.append((f"steady-{n}-{os.urandom(4).hex()}", json.dumps(body).encode(), {}))
    return out


def held_versions(db: Path) -> dict[str, int]:
    """sourceId → the version the sandbox holds (companies' phone, licenses' mrr)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            rows = conn.execute(
                "SELECT json_extract(doc, '$.sourceId'), json_extract(doc, '$.phone'),"
                " json_extract(doc, '$.mrr') FROM records WHERE model IN ('companies', 'licenses')"
            ).fetchall()
    except sqlite3.Error:
        return {}
    return {key: int(phone if phone is not None else mrr or 0) for key, phone, mrr in rows if key}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, in MiB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


async def send_steady(
    port: int,
    requests: Callable[[int], bytes],
    count: int,
    rate: float,
    sample: set[int],
    acked: dict[int, float],
    concurrency: int = 16,
) -> int:
    """Send request n at n / rate s after the start over keep-alive connections, writing
    the acknowledgement time of each sampled request into ``acked`` as it comes (the
    watcher reads it meanwhile); returns how many were not accepted. Each request is
    signed as it is sent: a signature made at the start would expire in a long run (the
    receiver refuses timestamps over 5 minutes old)."""
    failures = 0
    started = time.perf_counter()
    next_index = 0

    async def sender() -> None:
        nonlocal failures, next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_index < count:
                n = next_index
                next_index += 1
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(requests(n))
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if not status_line.startswith(b"HTTP/1.1 2"):
                    failures += 1
                elif n in sample:
                    acked[n] = time.perf_counter()
        finally:
            writer.close()

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return failures


async def watch(db: Path, wanted: dict[int, tuple[str, int]], acked: dict[int, float],
                until: float) -> dict[int, float]:  # fmt: skip
    """When each sampled (sourceId, version) is held by the sandbox, polled every 50 ms."""
    seen: dict[int, float] = {}
    while time.perf_counter() < until and len(seen) < len(wanted):
        held = await asyncio.to_thread(held_versions, db)
        now = time.perf_counter()
        for n, (key, version) in wanted.items():
            if n not in seen and n in acked and held.get(key, 0) >= version:
                seen[n] = now
        await asyncio.sleep(0.05)
    return seen


def run(rate: float, seconds: float, records: int, linger: str | None) -> None:
    logs = Path(tempfile.mkdtemp(prefix="phs-steady-"))
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    count = int(rate * seconds)
    burst = stream(count, records)
    every = max(1, int(rate * SAMPLE_EVERY_S))
    wanted: dict[int, tuple[str, int]] = {}
    for n in range(0, count, every):
        n -= n % 3 == 2  # companies and licenses only: they carry their version
        body = json.loads(burst[n][1])
        version = int(body["fields"].get("phone") or body["fields"]["mrr"])
        wanted[n] = (body["key"]["sourceId"], version)
    processes = []
    redis_server = RedisServer()
    database = postgres_database()
    database_url = database.__enter__()
    try:
        redis_server.start()
        web_port, sandbox_port = free_port(), free_port()
        planhat = f"http://127.0.0.1:{sandbox_port}"
        sandbox_db = logs / "sandbox.db"
        key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PLANHAT", "DATABASE"))}
        env |= {"STANDARD_WEBHOOK_SECRET": secret, "PLANHAT_SYNC_LOG_LEVEL": "warning",
                "DATABASE_URL": database_url, "REDIS_URL": redis_server.url,
                "PLANHAT_BASE_URL": planhat,
                "PLANHAT_SYNC_SECRET_KEY": key}  # fmt: skip
        if linger is not None:
            env["PLANHAT_SYNC_FLUSH_LINGER"] = linger
        processes.append(start(["sandbox", "--port", str(sandbox_port), "--db", str(sandbox_db),
                                "--rate-per-minute", "200", "--burst", "50"], env,
                               logs / "sandbox.log"))  # fmt: skip
        web = start(["web", "--port", str(web_port), "--workers", "2"], env, logs / "web.log")
        processes.append(web)
        workers = [start(["worker", "--concurrency", "1", "--loglevel", "warning",
                          f"--hostname=steady{n}@%h"], env, logs / f"worker{n}.log")
                   for n in range(2)]  # fmt: skip
        processes.extend(workers)
        processes.append(start(["beat", "--loglevel", "warning", "--schedule",
                                str(logs / "beat-schedule")], env, logs / "beat.log"))  # fmt: skip
        wait_http(f"{planhat}/_sandbox/stats")
        wait_http(f"http://127.0.0.1:{web_port}/healthz")
        time.sleep(2.0)
        rss_start = (rss_mb(web.pid), *(rss_mb(w.pid) for w in workers))
        load_start = Path("/proc/loadavg").read_text().split()[:3]
        before = httpx.get(f"{planhat}/_sandbox/stats").json()

        def requests(n: int) -> bytes:
            return raw_requests(web_port, secret, [burst[n]])[0]

        async def both() -> tuple[dict[int, float], int, dict[int, float]]:
            acked: dict[int, float] = {}
            sending = asyncio.ensure_future(
                send_steady(web_port, requests, len(burst), rate, set(wanted), acked)
            )
            watching = asyncio.ensure_future(
                watch(sandbox_db, wanted, acked, time.perf_counter() + seconds + 60)
            )
            failures = await sending
            return acked, failures, await watching

        started = time.perf_counter()
        acked, failures, seen = asyncio.run(both())
        sent_for = time.perf_counter() - started
        wait_until(lambda: drained(database_url), timeout=300, what="the drain", every=0.1)
        total = time.perf_counter() - started
        after = httpx.get(f"{planhat}/_sandbox/stats").json()
        rss_end = (rss_mb(web.pid), *(rss_mb(w.pid) for w in workers))
        load_end = Path("/proc/loadavg").read_text().split()[:3]
    finally:
        stop(processes)
        redis_server.stop()
        database.__exit__(None, None, None)

    latencies = [seen[n] - acked[n] for n in seen if n in acked]
    calls = after["requests"] - before["requests"]
    limited = after["rate_limited"] - before["rate_limited"]
    print(f"steady {rate:.0f} events/s for {seconds:.0f} s over {records} records, "
          f"{count} events (sent in {sent_for:.1f} s, {failures} not accepted); "
          f"PostgreSQL + Redis, receiver x2, 2 workers x 1; logs in {logs}")  # fmt: skip
    print(f"  load average at start {' '.join(load_start)}, at end {' '.join(load_end)}")
    if latencies:
        print(f"  webhook ack -> visible in Planhat ({len(latencies)} of {len(wanted)} sampled):"
              f" p50 {percentile(latencies, 50):.2f} s, p90 {percentile(latencies, 90):.2f} s,"
              f" p99 {percentile(latencies, 99):.2f} s, max {max(latencies):.2f} s")  # fmt: skip
    print(f"  Planhat calls: {calls} in {total:.1f} s = {calls / total * 60:.0f} a minute; "
          f"{limited} answered 429; by route {after['by_route']}")  # fmt: skip
    print(f"  RSS MiB (web, worker0, worker1): start {', '.join(f'{m:.0f}' for m in rss_start)};"
          f" end {', '.join(f'{m:.0f}' for m in rss_end)}")  # fmt: skip
    naive = rate * 60
    print(f"  naive baseline (one call per event): {naive:,.0f} calls a minute asked for, "
          f"200 allowed: it falls behind by {naive - 200:,.0f} events every minute")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="events a second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--linger", default=None, help="PLANHAT_SYNC_FLUSH_LINGER (seconds)")
    args = parser.parse_args()
    assert EXE
    run(args.rate, args.seconds, args.records, args.linger)


if __name__ == "__main__":
    main()
