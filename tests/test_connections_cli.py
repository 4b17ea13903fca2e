"""``planhat-sync connections``: mapping options are checked when a connection is added,
kept in plain sight (``list``), and read by the workers; the ``default`` connection's come
from the environment and a bad one stops the process at start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog
from cryptography.fernet import Fernet
from typer.testing import CliRunner, Result

from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import make_engine
from worker.cli import app
from worker.runtime.settings import Settings, env_options


def run(tmp_path: Path, *args: str) -> Result:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/state.db",
        "PLANHAT_SYNC_SECRET_KEY": KEY,
    }
    saved = structlog.get_config()  # the CLI points structlog at the runner's stderr
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        structlog.configure(**saved)


KEY = Fernet.generate_key().decode()
ADD = ["connections", "add", "acme", "--planhat-token", "pt-1", "--secret", "stripe=whsec_1"]


def test_a_connection_keeps_its_options_and_lists_them_but_not_its_secrets(
    tmp_path: Path,
) -> None:
    added = run(tmp_path, *ADD, "--option", "stripe.company_key=metadata.account_id",
                "--option", "chargebee.trials=skip")  # fmt: skip
    listed = run(tmp_path, "connections", "list")

    assert added.exit_code == 0, added.stderr
    [row] = json.loads(listed.stdout)
    assert row["options"] == {
        "stripe.company_key": "metadata.account_id",
        "chargebee.trials": "skip",
    }
    assert "whsec_1" not in listed.stdout
    assert "pt-1" not in listed.stdout
    engine = make_engine(f"sqlite:///{tmp_path}/state.db")
    connections = Connections(engine, box=lambda: SecretBox(KEY), default=lambda: None)
    assert connections.options("acme")["stripe.company_key"] == "metadata.account_id"


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ("stripe.company_key=name", "stripe.company_key='name' is not valid"),
        ("stripe.colour=blue", "stripe has no option 'colour'"),
        ("nosuchsource.trials=zero", "no source named 'nosuchsource'"),
        ("stripe.trials", "expected SOURCE.OPTION=VALUE"),
    ],
)
def test_a_bad_option_is_refused_and_nothing_is_added(
    tmp_path: Path, option: str, says: str
) -> None:
    result = run(tmp_path, *ADD, "--option", option)

    assert result.exit_code == 2
    assert says in " ".join(result.stderr.split()).replace("│", "").replace("  ", " ")
    assert json.loads(run(tmp_path, "connections", "list").stdout) == []


def test_the_default_connection_takes_its_options_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRIPE_COMPANY_KEY", "metadata.account_id")
    monkeypatch.setenv("CHARGEBEE_PRODUCT_NAME", "item")

    tenant: Tenant = Settings().default_tenant()

    assert tenant.options == {
        "stripe.company_key": "metadata.account_id",
        "chargebee.product_name": "item",
    }


def test_a_bad_option_in_the_environment_stops_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRIPE_TRIALS", "sometimes")

    with pytest.raises(ValueError, match=r"stripe\.trials='sometimes' is not valid"):
        env_options()
