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

from sqlalchemy import Engine
from sqlmodel import col, select

from state.crypto import SecretBox
from state.db import session_scope
from state.tables import Connection

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


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
    ) -> None:
        self._engine = engine
        self._box = box
        self._default = default
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Tenant | None]] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every connection: ``default`` and the stored ones."""
        with session_scope(self._engine) as session:
            stored = list(session.exec(select(Connection.name)))
        return sorted({"default", *stored})

    def cached(self, name: str) -> tuple[bool, Tenant | None]:
        """(found in the cache, the tenant): no I/O, for the receiver's event loop."""
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and time.monotonic() - hit[0] < self._ttl:
                return True, hit[1]
        return False, None

    def get(self, name: str) -> Tenant | None:
        now = time.monotonic()
        found, tenant = self.cached(name)
        if found:
            return tenant
        tenant = self._load(name)
        with self._lock:
            self._cache[name] = (now, tenant)
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
