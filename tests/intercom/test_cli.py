"""``planhat-sync intercom-sandbox`` is registered beside ``zendesk-sandbox``."""

from __future__ import annotations

from typer.testing import CliRunner

from worker.cli.main import app


def test_the_intercom_sandbox_command_is_registered() -> None:
    result = CliRunner().invoke(app, ["intercom-sandbox", "--help"])
    assert result.exit_code == 0, result.output
    assert "--webhook-url" in result.output
    assert "--client-secret" in result.output


def test_an_app_code_is_token_equals_code() -> None:
    result = CliRunner().invoke(app, ["intercom-sandbox", "--app-code", "token-without-code"])
    assert result.exit_code == 2
    assert "--app-code takes TOKEN=CODE" in result.output
