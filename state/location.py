"""Where the state lives when nothing says otherwise: one place, for every command.

``planhat-sync dev`` keeps everything in its data directory, ``.planhat-sync/`` in the
current directory (``PLANHAT_SYNC_DATA_DIR`` moves it): ``state.db``, ``secret.key``, …
Every other command looks there too, so ``dlq list`` beside a running ``dev`` reads dev's
database and ``connections add`` seals with dev's key. ``DATABASE_URL`` and
``PLANHAT_SYNC_SECRET_KEY`` override the database and the key (production sets both).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

DATA_DIR_ENV = "PLANHAT_SYNC_DATA_DIR"
DEFAULT_DATA_DIR = ".planhat-sync"
STATE_FILE = "state.db"
KEY_FILE = "secret.key"


def data_dir() -> Path:
    """The data directory: ``PLANHAT_SYNC_DATA_DIR``, or ``.planhat-sync`` here."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / STATE_FILE}"


def default_database_url() -> str:
    """The state database when ``DATABASE_URL`` is unset: SQLite in the data directory."""
    return sqlite_url(data_dir())


def key_file(directory: Path | None = None) -> Path:
    """The file dev keeps its secret key in (used when PLANHAT_SYNC_SECRET_KEY is unset)."""
    return (directory or data_dir()) / KEY_FILE


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    path = parsed.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def missing_database(url: str) -> Path | None:
    """The SQLite file ``url`` names when it does not exist: a command that only reads
    must say so rather than open (and so create) an empty database."""
    path = sqlite_path(url)
    return path if path is not None and not path.exists() else None


def make_data_dir(url: str) -> None:
    """Create the folder of a SQLite database, readable by its owner only (0700): it
    will hold raw webhook bodies. An existing folder is left as it is."""
    path = sqlite_path(url)
    if path is not None and not path.parent.exists():
        path.parent.mkdir(mode=0o700)  # only the last folder: a mistyped path fails
