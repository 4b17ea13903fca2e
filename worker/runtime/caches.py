"""What a runtime keeps per tenant between jobs, each bounded: Planhat clients and the
prepare hooks' scratch space. A process serving many tenants, or one whose tenants rotate
their tokens, must not keep every one it ever met."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from cachetools import LRUCache, TTLCache

from connectors.planhat.client import PlanhatClient
from connectors.planhat.retry import RetryPolicy
from state.connections import Connections
from worker.runtime import metrics
from worker.runtime.ratelimit import budget_key
from worker.runtime.settings import MissingTokenError

# Inside one flush the client retries a 5xx briefly; a 429 surfaces at once, so the shared
# pause is set for every worker instead of one worker sleeping on its own.
FLUSH_RETRY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=4.0, max_rate_limit_wait=0.0)
# Open Planhat clients (one connection pool each) a process keeps: more distinct tokens
# than this, flushed round-robin, cost a new TLS connection per flush, nothing more.
CLIENTS = 128
# Connections whose prepare memo (a respondent directory: every enduser e-mail of the
# tenant) is kept, and for how long: the directory is re-read after 5 minutes anyway.
MEMOS = 128
MEMO_TTL = 3600.0
# Connections whose mapping options ingest keeps, and for how long (as Connections does).
OPTIONS = 1024
OPTIONS_TTL = 5.0

ClientKey = tuple[str, str]  # (base URL, token)


class _Evicting(LRUCache[ClientKey, PlanhatClient]):
    """An LRU cache that hands what it evicts to ``evicted``."""

    def __init__(self, maxsize: int, evicted: Callable[[PlanhatClient], None]) -> None:
        super().__init__(maxsize=maxsize)
        self._evicted = evicted

    def popitem(self) -> tuple[ClientKey, PlanhatClient]:
        key, client = super().popitem()
        self._evicted(client)
        return key, client


class PlanhatClients:
    """One Planhat client per (base URL, token), shared by the connections that use it; the
    least recently used beyond ``maxsize`` are closed. A client is closed only once no job
    holds it: an evicted client still in a flush is closed when that flush lets go."""

    def __init__(self, connections: Connections, maxsize: int = CLIENTS) -> None:
        self.connections = connections
        self._lock = threading.Lock()  # guards all three below
        self._clients = _Evicting(maxsize, self._evicted)
        self._users: Counter[PlanhatClient] = Counter()
        self._retired: set[PlanhatClient] = set()  # evicted while in use

    def lease(self, connection: str) -> AbstractContextManager[tuple[PlanhatClient, str]]:
        """The client for ``connection`` and the rate budget it draws from, held while the
        ``with`` block runs. Raises at once (not on entering) LookupError for an unknown
        connection and MissingTokenError for one without a token."""
        tenant = self.connections.get(connection)
        if tenant is None:
            raise LookupError(f"no connection named {connection!r}")
        if not tenant.planhat_token:
            raise MissingTokenError(f"connection {connection!r} has no Planhat token")
        return self._held(tenant.planhat_base_url, tenant.planhat_token)

    @contextmanager
    def _held(self, base_url: str, token: str) -> Iterator[tuple[PlanhatClient, str]]:
        key = (base_url, token)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = PlanhatClient(
                    token, base_url=base_url, retry=FLUSH_RETRY, observe=metrics.planhat_call
                )
                self._clients[key] = client
            self._users[client] += 1
        try:
            yield client, budget_key(token)
        finally:
            close = False
            with self._lock:
                self._users[client] -= 1
                if not self._users[client]:
                    del self._users[client]
                    close = client in self._retired
                    self._retired.discard(client)
            if close:
                client.close()

    def _evicted(self, client: PlanhatClient) -> None:  # under self._lock
        if self._users[client]:
            self._retired.add(client)
        else:
            client.close()


class PrepareMemos:
    """Each connection's scratch space for prepare hooks (their caches, such as the
    respondent directories): the ``maxsize`` most recently used connections', each for at
    most ``ttl`` seconds. One flush per connection at a time uses its memo."""

    def __init__(
        self,
        maxsize: int = MEMOS,
        ttl: float = MEMO_TTL,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._memos: TTLCache[str, dict[str, Any]] = TTLCache(maxsize=maxsize, ttl=ttl, timer=timer)
        self._lock = threading.Lock()

    def get(self, connection: str) -> dict[str, Any]:
        with self._lock:
            try:
                return self._memos[connection]
            except KeyError:  # first flush, expired or evicted: start empty
                memo: dict[str, Any] = {}
                self._memos[connection] = memo
                return memo

    def clear(self) -> None:
        with self._lock:
            self._memos.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._memos)


class MappingOptions(MutableMapping[str, Mapping[str, str]]):
    """Each connection's mapping options as ingest last read them, kept ``ttl`` seconds
    (as long as ``Connections`` keeps a tenant, so an edit applies as soon): a batch reads
    only those it has not seen lately, instead of every connection once per batch. Filled
    by ingest from inside its own transaction: on SQLite a second one would wait for it."""

    def __init__(
        self,
        maxsize: int = OPTIONS,
        ttl: float = OPTIONS_TTL,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._options: TTLCache[str, Mapping[str, str]] = TTLCache(
            maxsize=maxsize, ttl=ttl, timer=timer
        )
        self._lock = threading.Lock()  # the embedded engine's ingest threads share it

    def __getitem__(self, connection: str) -> Mapping[str, str]:
        with self._lock:
            return self._options[connection]

    def __setitem__(self, connection: str, options: Mapping[str, str]) -> None:
        with self._lock:
            self._options[connection] = options

    def __delitem__(self, connection: str) -> None:
        with self._lock:
            del self._options[connection]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._options))

    def __len__(self) -> int:
        with self._lock:
            return len(self._options)
