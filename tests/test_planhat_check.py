"""``planhat-sync planhat check``: is the token good, and which region is it from.

Planhat's regional hosts (api, api-eu, api-eu2, api-eu3, api-us2 .planhat.com) refuse a
token from another region like a wrong one (shared/reference/planhat-api.md); the check
asks ``GET /myprofile``. Two sandboxes stand in for two regions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.planhat.regions import check_token
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests import stand_in_http
from tests.conftest import sandbox_stats
from worker.cli import app

Start = Callable[[SandboxConfig], BackgroundSandbox]
runner = CliRunner()


def cli(base_url: str, *args: str, token: str = "") -> Any:
    env = {"PLANHAT_BASE_URL": base_url, "PLANHAT_API_TOKEN": token}
    return runner.invoke(app, ["planhat", *args], env=env)


def knowing(start: Start, *tokens: str) -> BackgroundSandbox:
    return start(SandboxConfig(tokens=frozenset(tokens), rate_per_minute=1e6, burst=1000))


def test_a_good_token_is_one_ok_line_naming_the_host_and_whose_it_is(start_sandbox: Start) -> None:
    sandbox = knowing(start_sandbox, "right")

    result = cli(sandbox.url, "check", token="right")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"ok: the token works on {sandbox.url} as Sandbox Service")
    assert result.stdout.count("\n") == 1
    assert sandbox_stats(sandbox)["by_route"] == {"GET /myprofile": 1}


def test_a_refused_token_is_one_line_with_the_region_hint_and_no_traceback(
    start_sandbox: Start,
) -> None:
    sandbox = knowing(start_sandbox, "right")

    result = cli(sandbox.url, "check", token="s3cr3t-wrong")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert f"error: {sandbox.url} refused the token (401)" in result.stderr
    assert "wrong region" in result.stderr
    assert "api-eu.planhat.com" in result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cr3t" not in result.stderr


def test_check_takes_no_other_arguments(sandbox: BackgroundSandbox) -> None:
    result = cli(sandbox.url, "check", "list")

    assert result.exit_code == 2
    assert "check takes no other arguments" in result.stderr


def test_a_model_without_an_action_says_which_actions_there_are(
    sandbox: BackgroundSandbox,
) -> None:
    result = cli(sandbox.url, "companies")

    assert result.exit_code == 2
    assert "an ACTION is needed: list, get" in result.stderr


def test_an_unreachable_host_is_one_line_too() -> None:
    result = cli("http://127.0.0.1:9", "check", token="t")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: could not check the token at http://127.0.0.1:9")
    assert result.stderr.count("\n") == 1


# --- regions: two sandboxes as two of Planhat's hosts ------------------------------------


@pytest.fixture
def regions(start_sandbox: Start) -> dict[str, str]:
    """ "api" knows token "us", "api-eu" knows token "eu"."""
    return {"api": knowing(start_sandbox, "us").url, "api-eu": knowing(start_sandbox, "eu").url}


def test_a_token_from_another_region_is_told_where_it_belongs(regions: dict[str, str]) -> None:
    checked = check_token("eu", regions["api"], regions=regions)

    assert not checked.ok
    assert checked.belongs_to == ("api-eu", regions["api-eu"])
    assert checked.line() == (
        f"{regions['api']} (region api) refused the token (401); it belongs to region "
        f"api-eu: set PLANHAT_BASE_URL={regions['api-eu']}"
    )


def test_a_token_of_its_region_is_ok_and_no_other_is_asked(regions: dict[str, str]) -> None:
    checked = check_token("eu", regions["api-eu"], regions=regions)

    assert checked.ok
    assert (checked.region, checked.belongs_to) == ("api-eu", None)
    assert checked.line().startswith(f"ok: the token works on {regions['api-eu']} (region api-eu)")


def test_a_token_no_region_knows_says_so(regions: dict[str, str]) -> None:
    checked = check_token("nobody", regions["api"], regions=regions)

    assert (checked.ok, checked.belongs_to, checked.asked) == (False, None, ("api-eu",))
    assert "no other region (api-eu) accepts it: check PLANHAT_API_TOKEN" in checked.line()


def test_a_host_that_is_not_planhats_never_gets_the_token_sent_elsewhere(
    start_sandbox: Start, regions: dict[str, str]
) -> None:
    elsewhere = knowing(start_sandbox, "other")

    checked = check_token("eu", elsewhere.url, regions=regions)

    assert (checked.ok, checked.region, checked.belongs_to) == (False, None, None)
    for url in regions.values():
        assert sandbox_stats_at(url)["requests"] == 0


def sandbox_stats_at(url: str) -> dict[str, Any]:

    stats: dict[str, Any] = stand_in_http.get(f"{url}/_sandbox/stats").json()
    return stats
