"""The real services the engine tests use: where they are, a fresh PostgreSQL database, and
what a test does when one is down.

Imported by tests/engine/conftest.py and tests/engine/harness.py, so it imports neither.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from state.db import migrate

PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# Under pytest-xdist each worker (gw0, gw1, ...) empties a Redis database of its own.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{15 - _WORKER}")


def service_missing(what: str, error: Exception) -> None:
    """Skip the test on a developer's machine; fail it in CI (CI=true), where .ci/run starts
    the services."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not reachable in CI: {error}")
    pytest.skip(f"{what} is not reachable here: {error}")


@contextmanager
def fresh_postgres_database(prefix: str = "phs_test", *, migrated: bool = True) -> Iterator[str]:
    """The URL of a new PostgreSQL database named ``<prefix>_<random>``, migrated unless
    ``migrated=False`` (then empty), and dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        admin.dispose()
        service_missing("PostgreSQL", error)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        if migrated:
            migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
