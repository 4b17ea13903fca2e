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

import structlog
from cachetools import TTLCache
from sqlalchemy import Engine
from sqlmodel import col, select

from state.crypto import SecretBox, SecretKeyError
from state.db import session_scope
from state.keys import LockedSecretsError, check_secrets, opens
from state.tables import Connection

log = structlog.get_logger(__name__)

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # fullmatch only: "$" passes a final "\n"
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
    if not NAME.fullmatch(name):
        raise ValueError("a connection name is 1-64 of a-z, 0-9, _ and -, starting alphanumeric")
    with session_scope(engine) as session:
        if session.get(Connection, name) is not None:
            raise ValueError(f"connection {name!r} exists already; remove it first")
        # Every stored connection opens with one key: a row sealed under another would
        # be unreadable to every process, and stop them at their next start.
        stored = list(session.exec(select(Connection)))
        locked = sorted(row.name for row in stored if not opens(box, row))
        if locked:
            raise SecretKeyError(f"not added: {LockedSecretsError(locked, len(stored))}")
        session.add(
            Connection(
                name=name,
                planhat_base_url=planhat_base_url,
                planhat_token=box.seal(planhat_token),
                secrets=box.seal(json.dumps(dict(secrets))),
                options=dict(options or {}),
            )
        )


def is_stored(engine: Engine, name: str) -> bool:
    with session_scope(engine) as session:
        return session.get(Connection, name) is not None


def change_options(
    engine: Engine, name: str, change: Callable[[dict[str, str]], dict[str, str]]
) -> dict[str, str]:
    """Replace a stored connection's options by ``change(options)``, in one transaction
    (the row locked: two changes at once both land); returns the new options. Workers
    see them within their cache's few seconds."""
    with session_scope(engine) as session:
        row = session.get(Connection, name, with_for_update=True)
        if row is None:
            raise LookupError(f"no stored connection named {name!r}")
        options = change(dict(row.options or {}))
        row.options = options
        session.add(row)
    return options


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
            "sources": _sources(box, row),
            "options": row.options or {},
            "created_at": row.created_at.isoformat(),
        }
        for row in rows
    ]


def _sources(box: SecretBox | None, row: Connection) -> list[str] | str:
    if box is None:
        return "(locked: no usable PLANHAT_SYNC_SECRET_KEY)"
    try:
        return sorted(_open_secrets(box, row))
    except SecretKeyError:
        return "(locked: PLANHAT_SYNC_SECRET_KEY does not open it)"


def _open_secrets(box: SecretBox | None, row: Connection) -> dict[str, str]:
    if not row.secrets or box is None:
        return {}
    opened: dict[str, str] = json.loads(box.open(row.secrets))
    return opened


class LockedConnectionError(SecretKeyError):
    """A stored connection whose token or secrets the key cannot open."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"connection {name!r}: {reason}")


class _Missing:
    """Not in the cache (``None`` is cached too: a name with no connection)."""


_MISSING = _Missing()


class Connections:
    """Finds tenants by name, for the receiver and the workers; caches briefly.

    A stored connection the key cannot open raises ``LockedConnectionError``: callers
    skip it (the receiver answers 503, workers leave its work for later) and it is
    logged here, once per ``report_every`` seconds, not once per event."""

    def __init__(
        self,
        engine: Engine,
        box: Callable[[], SecretBox],
        default: Callable[[], Tenant | None],
        ttl: float = 5.0,
        report_every: float = 60.0,
        check_every: float = 15.0,
        maxsize: int = CACHED_NAMES,
    ) -> None:
        self._engine = engine
        self._box = box
        self._default = default
        self._report_every = report_every
        self._check_every = check_every
        # Least recently used names go first once it is full; each lives ``ttl`` seconds.
        # A connection the key cannot open is cached as its error, to be raised again.
        self._cache: TTLCache[str, Tenant | LockedConnectionError | None] = TTLCache(
            maxsize=maxsize, ttl=ttl, timer=time.monotonic
        )
        self._reported: dict[str, float] = {}
        self._checked: tuple[float, SecretKeyError | None] | None = None
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every connection: ``default`` and the stored ones."""
        with session_scope(self._engine) as session:
            stored = list(session.exec(select(Connection.name)))
        return sorted({"default", *stored})

    def cached(self, name: str) -> tuple[bool, Tenant | None]:
        """(found in the cache, the tenant): no I/O, for the receiver's event loop. A
        connection that did not open counts as not found: ``get`` says why."""
        with self._lock:
            try:
                hit = self._cache[name]
            except KeyError:  # never cached, expired or evicted
                return False, None
        if isinstance(hit, LockedConnectionError):
            return False, None
        return True, hit

    def get(self, name: str) -> Tenant | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name, _MISSING)
        if not isinstance(hit, _Missing):
            if isinstance(hit, LockedConnectionError):
                raise hit
            return hit
        loaded: Tenant | LockedConnectionError | None
        try:
            loaded = self._load(name)
        except SecretKeyError as error:
            loaded = LockedConnectionError(name, str(error))
        with self._lock:
            self._cache[name] = loaded
        if isinstance(loaded, LockedConnectionError):
            self._report(loaded, now)
            raise loaded
        return loaded

    def options(self, name: str) -> Mapping[str, str]:
        """The connection's mapping options (none for an unknown connection)."""
        try:
            tenant = self.get(name)
        except LockedConnectionError:
            # Options are not sealed: mapping goes on while the secrets are locked.
            with session_scope(self._engine) as session:
                row = session.get(Connection, name)
            return (row.options or {}) if row is not None else {}
        return tenant.options if tenant is not None else {}

    def check_keys(self) -> None:
        """Raise unless the key opens every stored connection (``state.keys``). The
        answer is kept ``check_every`` seconds: ``/readyz`` is polled, and this opens
        every stored secret."""
        now = time.monotonic()
        with self._lock:
            last = self._checked
        if last is not None and now - last[0] < self._check_every:
            if last[1] is not None:
                raise last[1]
            return
        problem: SecretKeyError | None = None
        try:
            check_secrets(self._engine, self._box)
        except SecretKeyError as error:
            problem = error
        with self._lock:
            self._checked = (now, problem)
        if problem is not None:
            raise problem

    def _report(self, error: LockedConnectionError, now: float) -> None:
        with self._lock:
            last = self._reported.get(error.name)
            if last is not None and now - last < self._report_every:
                return
            self._reported[error.name] = now
        log.error("connection.locked", connection=error.name, reason=error.reason)

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
