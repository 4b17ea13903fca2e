"""``replay`` and ``dlq retry --all`` draw their progress on a terminal (standard error):
how many of how many, finished; away from a terminal, nothing but their output."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import Engine

from connectors.planhat.client import PlanhatClient
from state.tables import utcnow
from tests.engine import test_dlq_cli as dlq_cli
from tests.engine.test_dlq_cli import (
    Cli,
    bury_unmappable_event,
    bury_unowned_license,
    iso,
    pushed_company,
)

# The fixtures of the dead-letter commands' tests, used here as they are.
cli, planhat = dlq_cli.cli, dlq_cli.planhat

TERMINAL = {"TTY_COMPATIBLE": "1", "COLUMNS": "100"}


def last_frame(stderr: str) -> str:
    """What the terminal shows once the command is done: the last frame, plain."""
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stderr).split("\r")[-1]
    return " ".join(drawn.replace("━", "").split())


def test_dlq_retry_all_counts_the_letters_it_sent_back(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)
    bury_unmappable_event(sqlite_engine)
    cli.env |= TERMINAL

    result = cli("dlq", "retry", "--all")

    assert result.exit_code == 0, result.stderr
    assert last_frame(result.stderr).startswith("✓ retrying dead letters 2/2 ")


def test_replay_counts_the_events_it_ran_again(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    before = utcnow() - timedelta(minutes=1)
    for key in ("c1", "c2", "c3"):
        pushed_company(sqlite_engine, planhat, key)

    plain = cli("replay", "--since", iso(before))
    cli.env |= TERMINAL
    drawn = cli("replay", "--since", iso(before))

    assert (plain.exit_code, plain.stderr) == (0, "")
    assert drawn.exit_code == 0, drawn.stderr
    assert last_frame(drawn.stderr).startswith("✓ replaying events 3/3 ")
    assert drawn.stdout == plain.stdout  # the report on standard output, untouched
