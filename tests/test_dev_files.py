"""What ``planhat-sync dev`` keeps on disk is its owner's alone from the first byte: the
state database and its write-ahead log (raw webhook bodies), the key that opens the
stored secrets, the webhook secret, and the directory that holds them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from state.crypto import secret_box
from state.db import make_engine, migrate
from worker.cli.dev import private_data_dir, standard_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The common default: files readable by everyone unless created otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_the_state_database_and_its_wal_and_shm_are_private_from_the_start(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:  # WAL files exist while a connection is open
            connection.execute(text("CREATE TABLE probe (body BLOB)"))
            connection.execute(text("INSERT INTO probe VALUES (x'00')"))
            names = {"state.db", "state.db-wal", "state.db-shm"}
            assert names <= {p.name for p in tmp_path.iterdir()}
            assert {name: mode(tmp_path / name) for name in names} == dict.fromkeys(names, 0o600)
    finally:
        engine.dispose()


@pytest.mark.usefixtures("open_umask")
def test_the_secret_files_are_created_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STANDARD_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("PLANHAT_SYNC_SECRET_KEY", raising=False)

    secret = standard_secret(tmp_path)
    secret_box(tmp_path / "secret.key")

    assert secret.startswith("whsec_")
    assert standard_secret(tmp_path) == secret  # kept, not made again
    assert mode(tmp_path / "standard-webhook-secret") == 0o600
    assert mode(tmp_path / "secret.key") == 0o600


@pytest.mark.usefixtures("open_umask")
def test_a_new_data_dir_is_private(tmp_path: Path) -> None:
    private_data_dir(tmp_path / "a" / "data")

    assert mode(tmp_path / "a" / "data") == 0o700


@pytest.mark.usefixtures("open_umask")
def test_an_older_data_dir_keeps_its_mode_but_its_files_become_private(tmp_path: Path) -> None:
    # given what an earlier version left: a readable directory, database and webhook secret
    data = tmp_path / "older"
    data.mkdir()
    (data / "state.db").write_bytes(b"")
    (data / "standard-webhook-secret").write_text("whsec_x")
    (data / "notes.txt").write_text("the user's")

    private_data_dir(data)

    assert mode(data / "state.db") == 0o600
    assert mode(data / "standard-webhook-secret") == 0o600
    assert mode(data / "notes.txt") == 0o644
    assert mode(data) == 0o755
