"""Zendesk's limits on the write-back, against the stand-in: every call counts in the
credential's budget, a 429 pauses that credential for every worker, and a ticket over its
updates per window waits alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import httpx
import redis
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlmodel import select

from connectors.change import version_number
from connectors.source import TargetBusy, WriteBack, WriteBackContext
from connectors.sources import source_options
from connectors.zendesk import SOURCE
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import session_scope
from state.tables import Link, WriteBackItem, utcnow
from tests.fakes import RecordingDispatcher
from tests.zendesk.stand_in import EMAIL, TOKEN, new_ticket, stand_in
from worker.intake.poll import SourceApis
from worker.runtime.jobs import LocalLocks, PlanhatClients, Runtime
from worker.runtime.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter, WriteLimiters
from worker.runtime.settings import EngineSettings
from worker.runtime.windows import LocalWindows, RedisWindows
from worker.runtime.write_back_jobs import run_write_back

LATER = version_number("2100-01-01T00:00:00Z")
PUT = "PUT /api/v2/tickets/{id:int}.json"
SECRETS = {"zendesk:subdomain": "acme", "zendesk:email": EMAIL, "zendesk:api_token": TOKEN}


def runtime(
    engine: Engine,
    url: str,
    make: Callable[[float, int], RateLimiter],
    windows: LocalWindows | None = None,
    **options: str,
) -> Runtime:
    box = SecretBox(Fernet.generate_key().decode())
    tenant = Tenant(
        name="default",
        planhat_base_url="http://127.0.0.1:9",
        planhat_token="t",
        secrets=SECRETS,
        options={f"zendesk.{name}": value for name, value in options.items()},
    )
    return Runtime(
        engine=engine,
        limiter=LocalRateLimiter(rate_per_minute=1e6, burst=1000),
        dispatcher=RecordingDispatcher(),
        locks=LocalLocks(),
        clients=PlanhatClients(Connections(engine, box=lambda: box, default=lambda: tenant)),
        config=EngineSettings(max_budget_wait=0.0),
        apis=SourceApis(zendesk=url),
        write_limiters=WriteLimiters(make, windows),
    )


def queue(engine: Engine, ticket_ids: list[int], status: str) -> None:
    """A change of ``status`` made in Planhat to each ticket, waiting to go back."""
    with session_scope(engine) as session:
        for ticket_id in ticket_ids:
            record = {"connection": "default", "model": "tickets",
                      "key": f"sourceId={ticket_id}", "key_field": "sourceId",
                      "key_value": str(ticket_id), "planhat_id": f"{ticket_id:024x}"}  # fmt: skip
            if session.get(Link, ("default", "tickets", record["key"])) is None:
                session.add(Link(**record, source="zendesk", planhat_fields={}))
            session.add(WriteBackItem(**record, source="zendesk", fields={"status": status},
                                      version=LATER))  # fmt: skip


def rows(engine: Engine) -> dict[str, WriteBackItem]:
    with session_scope(engine) as session:
        found = list(session.exec(select(WriteBackItem)))
        session.expunge_all()
    return {row.key_value: row for row in found}


def stats(client: httpx.Client) -> dict[str, object]:
    answer: dict[str, object] = client.get("/_sandbox/stats").json()
    return answer


def test_every_zendesk_call_of_a_write_back_takes_from_the_credentials_budget(
    sqlite_engine: Engine,
) -> None:
    with stand_in() as (server, client):
        tickets = [new_ticket(client, subject=f"t{n}", status="open")["id"] for n in range(3)]
        client.post("/_sandbox/reset")
        queue(sqlite_engine, tickets, "solved")
        # three calls, and no more this minute: one write is a GET and a PUT
        rt = runtime(sqlite_engine, server.url, lambda rate, burst: LocalRateLimiter(
            rate_per_minute=1, burst=3))  # fmt: skip

        [report] = run_write_back(rt, "default")

        seen = stats(client)
        solved = [client.get(f"/api/v2/tickets/{t}.json").json()["ticket"]["status"]
                  for t in tickets].count("solved")  # fmt: skip
    assert seen["requests"] == 3  # GET, PUT; GET; then the PUT found no budget
    assert (report.written, report.deferred, report.dead) == (1, 2, 0)
    assert solved == 1
    assert [row.attempts for row in rows(sqlite_engine).values()] == [0, 0]


def test_a_zendesk_429_pauses_the_credential_for_every_worker(
    sqlite_engine: Engine, redis_client: redis.Redis
) -> None:
    def shared(rate: float, burst: int) -> RateLimiter:
        return RedisRateLimiter(redis_client, rate_per_minute=6000, burst=100, prefix="phs:wb")

    with stand_in(rate_per_minute=2) as (server, client):  # the account's: 2 a minute
        store = server.app.state.sandbox.store  # made by agents: no API call counted
        tickets = [store.create_ticket({"subject": f"t{n}", "status": "open"}, via="web",
                                       author=None)["id"] for n in range(3)]  # fmt: skip
        queue(sqlite_engine, tickets, "solved")
        client.post("/_sandbox/reset")

        [first] = run_write_back(runtime(sqlite_engine, server.url, shared), "default")
        after_first = stats(client)
        with session_scope(sqlite_engine) as session:  # due again at once, for the next
            for row in session.exec(select(WriteBackItem)):
                row.next_attempt_at = utcnow()
                session.add(row)
        [second] = run_write_back(runtime(sqlite_engine, server.url, shared), "default")
        after_second = stats(client)

    assert (first.written, first.stopped) == (1, True)
    assert after_first["rate_limited"] == 1  # the GET of the second write
    assert redis_client.pttl(redis_client.keys("phs:wb:*:pause")[0]) > 30_000
    # another worker, sharing Redis, makes no call while the credential is paused
    assert (second.written, second.deferred) == (0, 2)
    assert after_second["requests"] == after_first["requests"]
    assert [row.attempts for row in rows(sqlite_engine).values()] == [0, 0]


def test_forty_writes_to_one_ticket_in_a_burst_all_land_without_a_429() -> None:
    windows = LocalWindows()
    limits = {"ticket_updates": 30, "ticket_window_s": 1.0}  # 30 in a second, not ten minutes
    with stand_in(**limits) as (server, client), httpx.Client() as http:
        ticket = new_ticket(client, subject="busy", status="open")["id"]
        client.post("/_sandbox/reset")
        context = WriteBackContext(
            connection="default", api_base=server.url, secret=None, http=http,
            credentials={"subdomain": "acme", "email": EMAIL, "api_token": TOKEN},
            options=source_options(SOURCE, {"zendesk.ticket_updates": "30/1"}),
            record_window=lambda record, limit, window: windows.try_take(record, limit, window),
        )  # fmt: skip
        waited = 0
        for n in range(40):
            change = WriteBack(model="tickets", key_field="sourceId", key=str(ticket),
                               planhat_id="ph1", fields={"status": ("pending", "open")[n % 2]},
                               version=LATER)  # fmt: skip
            while True:  # what the write-back queue does with a busy ticket: later
                try:
                    SOURCE.write_back(context, change)
                    break
                except TargetBusy as busy:
                    waited += 1
                    time.sleep(busy.wait)
        seen = stats(client)
    assert seen["rate_limited"] == 0
    assert seen["api_writes"] == 40
    assert waited >= 1  # the 31st waited for the window


def test_a_ticket_over_its_update_limit_waits_and_the_others_go_on(
    sqlite_engine: Engine,
) -> None:
    def plenty(rate: float, burst: int) -> RateLimiter:
        return LocalRateLimiter(rate_per_minute=6000, burst=100)

    windows = LocalWindows()  # the runtime's, kept between runs as in a worker
    with stand_in() as (server, client):
        busy, other = (new_ticket(client, subject=s, status="open")["id"] for s in ("a", "b"))
        rt = runtime(sqlite_engine, server.url, plenty, windows, ticket_updates="1/600")
        queue(sqlite_engine, [busy], "pending")
        run_write_back(rt, "default")  # its one update in these ten minutes
        queue(sqlite_engine, [busy, other], "solved")
        client.post("/_sandbox/reset")

        [report] = run_write_back(rt, "default")

        puts = stats(client)["by_route"]
        states = {t: client.get(f"/api/v2/tickets/{t}.json").json()["ticket"]["status"]
                  for t in (busy, other)}  # fmt: skip
    assert (report.written, report.deferred, report.dead) == (1, 1, 0)
    assert puts[PUT] == 1  # type: ignore[index]
    assert states == {busy: "pending", other: "solved"}
    waiting = rows(sqlite_engine)
    assert list(waiting) == [str(busy)]
    assert waiting[str(busy)].attempts == 0
    assert waiting[str(busy)].next_attempt_at > utcnow() + timedelta(seconds=500)


def test_a_tickets_update_window_is_shared_by_every_worker_through_redis(
    redis_client: redis.Redis,
) -> None:
    one, another = RedisWindows(redis_client), RedisWindows(redis_client)
    assert one.try_take("cred:ticket:7", 2, 600) == 0.0
    assert another.try_take("cred:ticket:7", 2, 600) == 0.0
    assert 600 <= one.try_take("cred:ticket:7", 2, 600) <= 603  # until the first leaves it
    assert another.try_take("cred:ticket:8", 2, 600) == 0.0  # other tickets go on
