"""Connections (tenants): a Planhat token and base URL, and one webhook secret per source.

The ``default`` connection comes from the environment (PLANHAT_API_TOKEN,
PLANHAT_BASE_URL, <SOURCE>_WEBHOOK_SECRET); others are rows, their token and secrets
sealed with the SecretBox. A stored row named ``default`` takes precedence.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cachetools import TTLCache
from sqlalchemy import Engine
from sqlmodel import col, select

from state.crypto import SecretBox
from state.db import session_scope
from state.tables import Connection

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Names a Connections cache holds at most. The receiver looks up every name a request
# carries, known or not (a miss is cached too): without a bound, requests naming random
# connections would grow it forever.
CACHED_NAMES = 1024


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    planhat_base_url: str
    planhat_token: str = field(repr=False)
    secrets: Mapping[str, str] = field(repr=False)  # source → webhook secret
    # Mapping options, "<source>.<option>" → value (connectors/options.py); not secret.
    options: Mapping[str, str] = field(default_factory=dict)


def add_connection(
    engine: Engine,
    box: SecretBox,
    *,
    name: str,
    planhat_base_url: str,
    planhat_token: str,
    secrets: Mapping[str, str],
    options: Mapping[str, str] | None = None,
) -> None:
    if not NAME.match(name):
        raise ValueError("a connection name is 1-64 of a-z, 0-9, _ and -, starting alphanumeric")
    with session_scope(engine) as session:
        if session.get(Connection, name) is not None:
            raise ValueError(f"connection {name!r} exists already; remove it first")
        session.add(
            Connection(
                name=name,
                planhat_base_url=planhat_base_url,
                planhat_token=box.seal(planhat_token),
                secrets=box.seal(json.dumps(dict(secrets))),
                options=dict(options or {}),
            )
        )


def remove_connection(engine: Engine, name: str) -> None:
    with session_scope(engine) as session:
        row = session.get(Connection, name)
        if row is None:
            raise LookupError(f"no connection named {name!r}")
        session.delete(row)


def list_connections(engine: Engine, box: SecretBox | None) -> list[dict[str, object]]:
    """Names, base URLs and which sources have a secret; never a secret itself."""
    with session_scope(engine) as session:
        rows = list(session.exec(select(Connection).order_by(col(Connection.name))))
    return [
        {
            "name": row.name,
            "planhat_base_url": row.planhat_base_url,
            "sources": sorted(_open_secrets(box, row)) if box else "(locked)",
            "options": row.options or {},
            "created_at": row.created_at.isoformat(),
        }
        for row in rows
    ]


def _open_secrets(box: SecretBox | None, row: Connection) -> dict[str, str]:
    if not row.secrets or box is None:
        return {}
    opened: dict[str, str] = json.loads(box.open(row.secrets))
    return opened


class Connections:
    """Finds tenants by name, for the receiver and the workers; caches briefly."""

    def __init__(
        self,
        engine: Engine,
        box: Callable[[], SecretBox],
        default: Callable[[], Tenant | None],
        ttl: float = 5.0,
        maxsize: int = CACHED_NAMES,
    ) -> None:
        self._engine = engine
        self._box = box
        self._default = default
        # Least recently used names go first once it is full; each lives ``ttl`` seconds.
        self._cache: TTLCache[str, Tenant | None] = TTLCache(
            maxsize=maxsize, ttl=ttl, timer=time.monotonic
        )
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every connection: ``default`` and the stored ones."""
        with session_scope(self._engine) as session:
            stored = list(session.exec(select(Connection.name)))
        return sorted({"default", *stored})

    def cached(self, name: str) -> tuple[bool, Tenant | None]:
        """(found in the cache, the tenant): no I/O, for the receiver's event loop."""
        with self._lock:
            try:
                return True, self._cache[name]
            except KeyError:  # never cached, expired or evicted
                return False, None

    def get(self, name: str) -> Tenant | None:
        found, tenant = self.cached(name)
        if found:
            return tenant
        tenant = self._load(name)
        with self._lock:
            self._cache[name] = tenant
        return tenant

    def options(self, name: str) -> Mapping[str, str]:
        """The connection's mapping options (none for an unknown connection)."""
        tenant = self.get(name)
        return tenant.options if tenant is not None else {}

    def _load(self, name: str) -> Tenant | None:
        with session_scope(self._engine) as session:
            row = session.get(Connection, name)
        if row is None:
            return self._default() if name == "default" else None
        box = self._box()
        return Tenant(
            name=row.name,
            planhat_base_url=row.planhat_base_url,
            planhat_token=box.open(row.planhat_token) if row.planhat_token else "",
            secrets=_open_secrets(box, row),
            options=row.options or {},
        )
