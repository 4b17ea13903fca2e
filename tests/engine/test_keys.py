"""Changing PLANHAT_SYNC_SECRET_KEY: ``keys rotate`` re-seals every stored secret under the
new key (old and new both open meanwhile); ``keys check`` says when the old may go."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner, Result

from state.connections import Connections, LockedConnectionError, add_connection
from state.crypto import SecretBox
from state.db import session_scope
from state.keys import LockedSecretsError, check_secrets, reseal
from state.tables import Connection
from worker.cli import app

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


def add(engine: Engine, name: str, key: str = KEY_A) -> None:
    add_connection(
        engine,
        SecretBox(key),
        name=name,
        planhat_base_url="http://127.0.0.1:9",
        planhat_token=f"{name}-token",
        secrets={"standard": f"whsec_{name}", "stripe:api_key": f"sk_{name}"},
    )


def tenant(engine: Engine, name: str, key: str) -> Any:
    return Connections(engine, box=lambda: SecretBox(key), default=lambda: None).get(name)


def keys(engine: Engine, key: str, *args: str) -> Result:
    env = {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "PLANHAT_SYNC_SECRET_KEY": key,
    }
    return CliRunner().invoke(app, ["keys", *args], env=env)


def test_rotate_re_seals_everything_so_the_new_key_alone_opens_it(engine: Engine) -> None:
    # given two connections sealed under key A
    add(engine, "acme")
    add(engine, "beta")
    assert (
        keys(engine, f"{KEY_B},{KEY_A}", "check")
        .stdout.splitlines()[1]
        .startswith("2 of them are sealed under an older key")
    )

    # when the key changes to B, A still accepted while it does
    rotated = keys(engine, f"{KEY_B},{KEY_A}", "rotate")

    # then B alone opens every token and secret, and A opens none
    assert rotated.exit_code == 0, rotated.output
    assert "re-sealed 2 connection(s)" in rotated.stdout
    for name in ("acme", "beta"):
        opened = tenant(engine, name, KEY_B)
        assert opened.planhat_token == f"{name}-token"
        assert dict(opened.secrets) == {"standard": f"whsec_{name}", "stripe:api_key": f"sk_{name}"}
        with pytest.raises(LockedConnectionError):
            tenant(engine, name, KEY_A)
    checked = keys(engine, KEY_B, "check")
    assert checked.exit_code == 0
    assert checked.stdout == "ok: PLANHAT_SYNC_SECRET_KEY opens all 2 stored connection(s)\n"


def test_rotate_changes_nothing_when_one_connection_does_not_open(engine: Engine) -> None:
    add(engine, "acme")
    lost = SecretBox(Fernet.generate_key().decode())  # a key nobody has any more
    with session_scope(engine) as session:
        session.add(Connection(name="beta", planhat_base_url="x", planhat_token=lost.seal("t")))
    with session_scope(engine) as session:
        before = {row.name: row.planhat_token for row in session.exec(select(Connection))}

    result = keys(engine, f"{KEY_B},{KEY_A}", "rotate")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: nothing re-sealed: PLANHAT_SYNC_SECRET_KEY does not")
    assert "'beta'" in result.stderr
    with session_scope(engine) as session:
        assert {row.name: row.planhat_token for row in session.exec(select(Connection))} == before


def test_rotate_with_one_key_says_how_to_give_the_old_one(engine: Engine) -> None:
    add(engine, "acme")

    result = keys(engine, KEY_B, "rotate")

    assert result.exit_code == 2
    assert "PLANHAT_SYNC_SECRET_KEY=NEW,OLD" in result.stderr
    assert tenant(engine, "acme", KEY_A).planhat_token == "acme-token"


def test_check_names_the_connections_and_reseal_refuses_them(engine: Engine) -> None:
    add(engine, "acme")

    with pytest.raises(LockedSecretsError, match="1 of 1 connection") as raised:
        check_secrets(engine, lambda: SecretBox(KEY_B))
    with pytest.raises(LockedSecretsError):
        reseal(engine, SecretBox(KEY_B))

    assert raised.value.names == ["acme"]


def test_generate_prints_a_key_that_seals_and_opens(engine: Engine) -> None:
    key = keys(engine, KEY_A, "generate").stdout.strip()

    assert SecretBox(key).open(SecretBox(key).seal("x")) == "x"
