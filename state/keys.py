"""Does ``PLANHAT_SYNC_SECRET_KEY`` open what is stored, and re-sealing under a new key.

A wrong or changed key does not show until a secret is needed (a webhook arrives, a flush
starts). ``check_secrets`` tries every stored connection at once, so a process can refuse
to start and ``/readyz`` can say why, naming the connections it cannot open.
``reseal`` re-seals every stored token and secret under the first key, in one
transaction: either every connection moves to the new key or none does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import col, select

from state.crypto import KEY_ENV, KeyNotSetError, SecretBox, SecretKeyError
from state.db import for_update, session_scope
from state.tables import Connection

ROTATING = "README: Rotating the secret key"


class LockedSecretsError(SecretKeyError):
    """The key does not open these connections' secrets."""

    def __init__(self, names: Sequence[str], total: int) -> None:
        self.names = list(names)
        shown = ", ".join(repr(name) for name in names[:5])
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        super().__init__(
            f"{KEY_ENV} does not open the stored secrets of {len(names)} of {total} "
            f"connection(s): {shown}{more}. Was the key changed? Set the one they were "
            f"sealed with, or old and new comma-separated while changing it ({ROTATING})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyReport:
    connections: int  # stored connections, every one opened
    on_older_key: int  # of those, sealed under a key after the first (rotate moves them)


def _sealed(row: Connection) -> list[str]:
    return [value for value in (row.planhat_token, row.secrets) if value]


def opens(box: SecretBox, row: Connection) -> bool:
    try:
        for value in _sealed(row):
            box.open(value)
    except SecretKeyError:
        return False
    return True


def check_secrets(engine: Engine, box: Callable[[], SecretBox]) -> KeyReport:
    """Open every stored connection's token and secrets; raise naming those that do not
    open. With no stored connection no key is needed, but one that is set must be valid."""
    with session_scope(engine) as session:
        rows = list(session.exec(select(Connection).order_by(col(Connection.name))))
    try:
        opened = box()
    except KeyNotSetError:
        if not rows:
            return KeyReport(connections=0, on_older_key=0)
        raise KeyNotSetError(
            f"{KEY_ENV} is not set, and {len(rows)} connection(s) have sealed secrets"
        ) from None
    locked = [row.name for row in rows if not opens(opened, row)]
    if locked:
        raise LockedSecretsError(locked, len(rows))
    first = opened.first_key_only() if opened.key_count > 1 else opened
    older = sum(1 for row in rows if not opens(first, row))
    return KeyReport(connections=len(rows), on_older_key=older)


def reseal(engine: Engine, box: SecretBox) -> int:
    """Re-seal every stored token and secret under the box's first key; returns how many
    connections. Nothing changes unless every one opens."""
    with session_scope(engine) as session:
        rows = list(session.exec(for_update(session, select(Connection))))
        locked = sorted(row.name for row in rows if not opens(box, row))
        if locked:
            raise LockedSecretsError(locked, len(rows))
        for row in rows:
            if row.planhat_token:
                row.planhat_token = box.rotate(row.planhat_token)
            if row.secrets:
                row.secrets = box.rotate(row.secrets)
            session.add(row)
    return len(rows)
