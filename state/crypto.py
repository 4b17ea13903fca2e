"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The key is ``PLANHAT_SYNC_SECRET_KEY`` (``planhat-sync keys generate`` prints a new one);
the embedded default generates one and keeps it in a file readable by its owner only,
which every other command reads when the variable is unset (``secret_box``).
It may hold several keys, comma-separated, while a key is being changed: the first seals,
every one of them opens (``MultiFernet``), and ``rotate`` re-seals under the first.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from state.location import key_file as default_key_file

KEY_ENV = "PLANHAT_SYNC_SECRET_KEY"


class SecretKeyError(RuntimeError):
    pass


class KeyNotSetError(SecretKeyError):
    pass


class SecretBox:
    def __init__(self, keys: str) -> None:
        parts = [part.strip() for part in keys.split(",") if part.strip()]
        if not parts:
            raise KeyNotSetError(f"{KEY_ENV} is empty: it encrypts tokens and secrets at rest")
        fernets = []
        for position, part in enumerate(parts, start=1):
            try:
                fernets.append(Fernet(part.encode()))
            except (ValueError, TypeError):
                # Which one, never the key itself: this line ends up in logs and terminals.
                which = f"key {position} of {len(parts)} in " if len(parts) > 1 else ""
                raise SecretKeyError(
                    f"{which}{KEY_ENV} is not a Fernet key (32 url-safe base64 bytes; "
                    "planhat-sync keys generate prints one)"
                ) from None
        self._keys = parts
        self._fernet = MultiFernet(fernets)
        self.key_count = len(parts)

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"{KEY_ENV} does not open the stored secrets (was the key changed?)"
            ) from None

    def rotate(self, sealed: str) -> str:
        """The same secret sealed under the first key (opened with any of them)."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(f"{KEY_ENV} does not open the stored secrets") from None

    def first_key_only(self) -> SecretBox:
        """A box with the first key alone: what remains once the old keys are dropped."""
        return SecretBox(self._keys[0])

    def __repr__(self) -> str:
        return f"SecretBox(<{self.key_count} key(s) hidden>)"


def generate_key() -> str:
    return Fernet.generate_key().decode()


def secret_box(key_file: Path | None = None) -> SecretBox:
    """The box for ``PLANHAT_SYNC_SECRET_KEY``; without it, the key in ``key_file``
    (created on first use: ``dev`` passes its own), or else the key ``dev`` keeps in the
    data directory (``state/location.py``), read only if it is there, or an error that
    says what to set and where dev keeps its key."""
    key = os.environ.get(KEY_ENV)
    if key:
        return SecretBox(key)
    if key_file is None:
        kept = default_key_file()
        if not kept.is_file():
            raise KeyNotSetError(
                f"{KEY_ENV} is not set, and there is no {kept} (where planhat-sync dev keeps "
                "its key): run this where dev runs, or set it (planhat-sync keys generate "
                "prints a new one; it encrypts tokens and secrets at rest)"
            )
        return SecretBox(kept.read_text().strip())
    if not key_file.exists():
        key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            # Created readable by its owner only, never written first and restricted later.
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile: use theirs
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(generate_key())
    return SecretBox(key_file.read_text().strip())
