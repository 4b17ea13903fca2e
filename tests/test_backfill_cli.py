"""``planhat-sync backfill``: what it prints, how it resumes, and one line for each mistake
a user can make (an unknown source, one with no backfill, no API key, a key Stripe
refuses, an unknown connection, a --since that is no date)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from connectors.planhat.sandbox.server import BackgroundServer
from state.db import migrate
from tests.stripe.list_stand_in import API_KEY, StripeAccount, customers
from worker.cli.main import app


@pytest.fixture
def account() -> StripeAccount:
    return StripeAccount(customers=customers(250), subscriptions=[], invoices=[])


@pytest.fixture
def stripe(account: StripeAccount) -> Iterator[str]:
    server = BackgroundServer(account.app).start()
    yield server.url
    server.stop()


@pytest.fixture
def env(tmp_path: Path, stripe: str) -> dict[str, str]:
    database_url = f"sqlite:///{tmp_path}/state.db"
    migrate(database_url)  # as dev or `planhat-sync migrate` leaves it
    return {
        "DATABASE_URL": database_url,
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": stripe,
        "PLANHAT_SYNC_SECRET_KEY": "",
    }


def backfill(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, ["backfill", *args], env=env)


def test_a_backfill_prints_a_summary_per_list(env: dict[str, str]) -> None:
    result = backfill(env, "stripe", "--since", "2020-09-13")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        # customers are created a minute apart from 2020-09-13 12:26:40 UTC
        "customers: 3 pages, 250 stored, 0 already known, 0 ignored (nothing for Planhat)",
        "subscriptions: 1 pages, 0 stored, 0 already known, 0 ignored (nothing for Planhat)",
        "invoices: 1 pages, 0 stored, 0 already known, 0 ignored (nothing for Planhat)",
        "stored: the running engine (planhat-sync dev) ingests them at its next sweep",
    ]
    assert result.stderr == ""  # no terminal: no bar drawn


def test_the_progress_shows_each_list_on_a_terminal(env: dict[str, str]) -> None:
    result = backfill({**env, "TTY_COMPATIBLE": "1", "COLUMNS": "120"}, "stripe")

    assert result.exit_code == 0, result.stderr
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stderr)  # colours, cursor moves
    frame = drawn.split("\r")[-1]  # each frame is drawn over the last
    last_frame = [" ".join(line.replace("━", "").split()) for line in frame.splitlines()]
    assert [line.rsplit(" ", 1)[0] for line in last_frame] == [  # less the time taken
        "✓ customers 3 pages 250 stored 0 already known",
        "✓ subscriptions 1 pages 0 stored 0 already known",
        "✓ invoices 1 pages 0 stored 0 already known",
    ]


def test_interrupted_by_stripe_it_says_so_in_one_line_and_resumes(
    env: dict[str, str], account: StripeAccount
) -> None:
    account.fail_at = 1  # the second page of customers

    failed = backfill(env, "stripe")
    account.fail_at = None
    resumed = backfill(env, "stripe")

    assert failed.exit_code == 1
    assert failed.stderr == (
        "error: stripe answered 500 on /v1/customers; what was read is kept: "
        "run the same command again to go on from there\n"
    )
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.stdout.splitlines()[0] == (
        "customers (resumed): 2 pages, 150 stored, 0 already known, 0 ignored (nothing for Planhat)"
    )
    assert account.pages_asked()[("customers", "cus_bf_00150")] == 2  # only the one in flight
    assert max(account.pages_asked().values()) == 2


@pytest.mark.parametrize(
    ("args", "extra_env", "code", "line"),
    [
        (["strip"], {}, 2, "error: unknown source 'strip' (known: standard, stripe, chargebee, "
         "typeform, surveymonkey, planhat, zendesk, intercom)"),
        (["surveymonkey"], {}, 2, "error: surveymonkey has no backfill: the worker reads no "
         "list of its past records (its events arrive by webhook only)"),
        (["stripe"], {"STRIPE_API_KEY": ""}, 2, "error: connection 'default' has no "
         "stripe:api_key to read stripe with (connections add --secret stripe:NAME=VALUE; "
         "for default: STRIPE_API_KEY)"),
        (["stripe"], {"STRIPE_API_KEY": "sk_test_wrong"}, 1, "error: stripe refused the API key "
         "(401 on /v1/customers): check the connection's stripe:api_key secret"),
        (["stripe", "--connection", "acme"], {}, 2, "error: no connection named 'acme' "
         "(planhat-sync connections list)"),
        (["stripe", "--since", "last week"], {}, 2, "error: --since 'last week' is not a date "
         "like 2024-01-31 (or an ISO time)"),
    ],
    ids=["unknown-source", "no-backfill", "no-api-key", "key-refused", "no-connection",
         "bad-since"],
)  # fmt: skip
def test_a_users_mistake_is_one_line_and_a_non_zero_exit(
    env: dict[str, str],
    account: StripeAccount,
    args: list[str],
    extra_env: dict[str, str],
    code: int,
    line: str,
) -> None:
    result = backfill({**env, **extra_env}, *args)

    assert (result.exit_code, result.stderr) == (code, line + "\n")
    assert result.stdout == ""


def test_a_backfill_into_a_database_that_does_not_exist_is_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = backfill({**env, "DATABASE_URL": f"sqlite:///{tmp_path}/elsewhere.db"}, "stripe")

    assert result.exit_code == 1
    assert "no state database at" in result.output
    assert not (tmp_path / "elsewhere.db").exists()
