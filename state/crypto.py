"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The key is ``PLANHAT_SYNC_SECRET_KEY`` (``planhat-sync`` prints a new one with
``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``);
the embedded default generates one and keeps it in a file readable by its owner only.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_ENV = "PLANHAT_SYNC_SECRET_KEY"


class SecretKeyError(RuntimeError):
    pass


class SecretBox:
    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError):
            raise SecretKeyError(
                f"{KEY_ENV} is not a Fernet key (32 url-safe base64 bytes)"
            ) from None

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"{KEY_ENV} does not open the stored secrets (was the key changed?)"
            ) from None

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"


def secret_box(key_file: Path | None = None) -> SecretBox:
    """The box for ``PLANHAT_SYNC_SECRET_KEY``; without it, the key in ``key_file``
    (created on first use), or an error that says what to set."""
    key = os.environ.get(KEY_ENV)
    if key:
        return SecretBox(key)
    if key_file is None:
        raise SecretKeyError(f"{KEY_ENV} is not set: it encrypts tokens and secrets at rest")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(Fernet.generate_key().decode())
    return SecretBox(key_file.read_text().strip())
