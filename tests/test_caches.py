"""Every cache a process keeps per tenant is bounded: past its size the least recently used
entry goes (connection names, Planhat clients, prepare memos). An evicted Planhat client is
closed, but never under a flush that still holds it."""

from __future__ import annotations

from cryptography.fernet import Fernet
from sqlalchemy import Engine

from state.connections import Connections, add_connection
from state.crypto import SecretBox
from worker.runtime.caches import PlanhatClients, PrepareMemos

BOX = SecretBox(Fernet.generate_key().decode())
NOWHERE = "http://127.0.0.1:1"  # no request is made: the clients are only opened and closed


def tenants(engine: Engine, *names: str) -> Connections:
    """Connections with one stored tenant per name, each with its own Planhat token."""
    for name in names:
        add_connection(engine, BOX, name=name, planhat_base_url=NOWHERE,
                       planhat_token=f"token-{name}", secrets={})  # fmt: skip
    return Connections(engine, box=lambda: BOX, default=lambda: None)


def test_the_connection_cache_keeps_only_the_most_recently_used_names(
    sqlite_engine: Engine,
) -> None:
    # given a cache of 10 names, and requests naming 50 connections that do not exist
    connections = Connections(sqlite_engine, box=lambda: BOX, default=lambda: None, maxsize=10)

    for n in range(50):
        assert connections.get(f"stranger-{n}") is None

    # then only the last 10 are still cached
    cached = [n for n in range(50) if connections.cached(f"stranger-{n}")[0]]
    assert cached == list(range(40, 50))


def test_planhat_clients_beyond_the_bound_are_closed_least_recently_used_first(
    sqlite_engine: Engine,
) -> None:
    clients = PlanhatClients(tenants(sqlite_engine, "a", "b", "c"), maxsize=2)
    opened = {}

    for name in ("a", "b", "a", "c"):  # "b" is now the least recently used
        with clients.lease(name) as (client, _budget):
            opened[name] = client

    assert [opened[name].closed for name in ("a", "b", "c")] == [False, True, False]
    with clients.lease("b") as (again, _budget):
        assert again is not opened["b"]
        assert not again.closed
    assert opened["a"].closed  # "b" came back in and pushed "a" out


def test_a_planhat_client_evicted_during_a_flush_is_closed_when_the_flush_lets_go(
    sqlite_engine: Engine,
) -> None:
    clients = PlanhatClients(tenants(sqlite_engine, "a", "b", "c"), maxsize=1)

    with clients.lease("a") as (held, _budget):
        with clients.lease("b"), clients.lease("c"):
            pass
        assert not held.closed  # evicted twice over, but this flush is still using it
    assert held.closed


def test_two_connections_on_one_token_share_one_client(sqlite_engine: Engine) -> None:
    connections = tenants(sqlite_engine, "a")
    add_connection(sqlite_engine, BOX, name="a2", planhat_base_url=NOWHERE,
                   planhat_token="token-a", secrets={})  # fmt: skip
    clients = PlanhatClients(connections, maxsize=1)

    with clients.lease("a") as (first, budget_a), clients.lease("a2") as (second, budget_a2):
        assert (first, budget_a) == (second, budget_a2)
    assert not first.closed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_prepare_memos_keep_the_most_recently_flushed_connections_for_a_while() -> None:
    clock = Clock()
    memos = PrepareMemos(maxsize=2, ttl=60.0, timer=clock)
    for name in ("a", "b", "c"):
        memos.get(name)["directory"] = name

    assert len(memos) == 2
    assert memos.get("a") == {}  # evicted: the next flush starts afresh
    assert memos.get("c") == {"directory": "c"}
    clock.now += 61.0
    assert memos.get("c") == {}  # expired
