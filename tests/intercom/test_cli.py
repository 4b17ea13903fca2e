"""``planhat-sync intercom-sandbox`` is registered beside ``zendesk-sandbox``."""

from __future__ import annotations

from typer.testing import CliRunner

from worker.cli.main import app


def test_the_intercom_sandbox_command_is_registered() -> None:
    result = CliRunner().invoke(app, ["intercom-sandbox", "--help"])
    assert result.exit_code == 0, result.output
    assert "--webhook-url" in result.output
    assert "--client-secret" in result.output
