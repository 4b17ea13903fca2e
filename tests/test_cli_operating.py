"""The CLI tells you what to do: it finds the state where ``dev`` keeps it, stops at start
on a bad setting or a missing token, and says what went wrong in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import typer
from cryptography.fernet import Fernet
from sqlmodel import select
from typer.testing import CliRunner, Result

from connectors.planhat.sandbox.server import BackgroundServer
from connectors.senders import SIGNERS
from state.connections import Connections, add_connection
from state.crypto import SecretBox, secret_box
from state.db import make_engine, migrate, session_scope
from state.location import key_file, sqlite_url
from state.tables import InboxEvent
from tests.fakes import RecordingDispatcher
from worker.cli import app
from worker.cli.startup import refuse_without_token
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.receiver import create_web_app
from worker.runtime.settings import Settings

KEY = Fernet.generate_key().decode()
# Everything that could point a command elsewhere than the test says.
OUTSIDE = ("DATABASE_URL", "PLANHAT_SYNC_", "PLANHAT_API_TOKEN", "PLANHAT_BASE_URL", "STRIPE_")


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory and an environment that names no state of its own."""
    for name in list(os.environ):
        if name.startswith(OUTSIDE):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    saved = structlog.get_config()  # the CLI points structlog at the runner's stderr
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        structlog.configure(**saved)


def one_line(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_a_reading_command_with_no_database_says_where_it_looked_and_creates_none(
    here: Path,
) -> None:
    for command in (["dlq", "list"], ["replay", "--since", "2026-01-01"], ["connections", "list"]):
        line = one_line(run(*command), 1)

        assert line.startswith("error: no state database at .planhat-sync/state.db"), line
        assert "where planhat-sync dev keeps it" in line
    assert not (here / ".planhat-sync").exists()


def test_every_command_finds_the_state_and_the_key_where_dev_keeps_them(here: Path) -> None:
    # given: what dev leaves in its data directory, its key file included
    data = here / ".planhat-sync"
    migrate(sqlite_url(data))
    secret_box(key_file(data))  # dev's own: created on first use

    added = run("connections", "add", "acme", "--planhat-token", "pt-1")
    listed = run("connections", "list")
    letters = run("dlq", "list")

    assert added.exit_code == 0, added.output
    assert [row["name"] for row in json.loads(listed.stdout)] == ["acme"]
    assert letters.exit_code == 0
    assert letters.stdout.strip() == "no dead letters"
    assert {p.name for p in here.iterdir()} == {".planhat-sync"}  # no ./planhat-sync.db


def test_connections_add_without_a_key_says_where_dev_keeps_it_and_stores_nothing(
    here: Path,
) -> None:
    line = one_line(run("connections", "add", "acme", "--planhat-token", "pt-1"), 2)

    assert "PLANHAT_SYNC_SECRET_KEY is not set" in line
    assert ".planhat-sync/secret.key" in line
    assert not (here / ".planhat-sync").exists()


@pytest.mark.parametrize("command", ["web", "worker", "beat", "dev"])
@pytest.mark.parametrize(
    ("setting", "says"),
    [
        (("STRIPE_TRIALS", "sometimes"), "error: STRIPE_TRIALS: stripe.trials='sometimes' is"),
        (("PLANHAT_SYNC_BATCH_SIZE", "lots"), "error: PLANHAT_SYNC_BATCH_SIZE='lots': Input"),
        (("PLANHAT_SYNC_LOG_LEVEL", "loud"), "error: PLANHAT_SYNC_LOG_LEVEL='loud' is not a"),
    ],
)
def test_a_bad_setting_stops_a_long_running_command_at_start_naming_it(
    here: Path, command: str, setting: tuple[str, str], says: str
) -> None:
    env = {setting[0]: setting[1], "PLANHAT_SYNC_SECRET_KEY": KEY, "PLANHAT_API_TOKEN": "pt"}

    line = one_line(run(command, env=env), 2)

    assert line.startswith(says), line
    assert not (here / ".planhat-sync").exists()  # nothing was started, nothing made


def test_the_accepted_values_are_named_with_the_bad_option() -> None:
    env = {"STRIPE_TRIALS": "sometimes", "PLANHAT_SYNC_SECRET_KEY": KEY}
    line = one_line(run("web", env=env), 2)

    assert all(f"'{value}'" in line for value in ("zero", "full", "skip")), line


def test_a_worker_without_a_planhat_token_does_not_start(here: Path) -> None:
    line = one_line(run("worker", env={"PLANHAT_SYNC_SECRET_KEY": KEY}), 2)

    assert line.startswith("error: PLANHAT_API_TOKEN is not set"), line


def test_with_stored_tenants_a_missing_token_is_a_warning_about_default_only(
    here: Path,
) -> None:
    url = sqlite_url(here)
    migrate(url)
    settings = Settings(database_url=url)
    with pytest.raises(typer.Exit):  # no stored tenant: the worker would not start
        refuse_without_token(settings)

    box = SecretBox(KEY)
    add_connection(make_engine(url), box, name="acme", planhat_base_url="https://api.planhat.com",
                   planhat_token="pt-acme", secrets={})  # fmt: skip
    warning = refuse_without_token(settings)

    assert warning is not None
    assert "Serving the 1 stored connection(s)" in warning
    assert "'default' stay pending" in warning
    assert refuse_without_token(Settings(database_url=url, planhat_api_token="pt")) is None


def test_version_prints_the_package_version() -> None:
    result = run("--version")

    assert result.exit_code == 0
    assert result.stdout.startswith("planhat-sync 0.")


# The real command, as a user runs it: the entry point's import costs ~3 s a run.
def _planhat_sync(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    program = str(Path(sys.executable).with_name("planhat-sync"))
    return subprocess.run([program, *args], env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    ("args", "database", "says"),
    [
        (["send", "--url", "http://127.0.0.1:9/webhooks/default/standard", "--secret",
          "whsec_MDEyMzQ1Njc4OQ==", "{}"], None, "cannot send to http://127.0.0.1:9/"),
        (["send", "--data", "@/missing.json"], None, "cannot read /missing.json"),
        (["migrate"], "postgresql+psycopg://postgres@127.0.0.1:9/test",
         "cannot use the state database postgresql+psycopg://postgres@127.0.0.1:9/test"),
        (["migrate"], "postgres://postgres@127.0.0.1:5432/test", "is not a database URL"),
        (["migrate"], "postgresql+psycopg://postgres@127.0.0.1:5432/no_such_db",
         'database "no_such_db" does not exist'),
    ],
)  # fmt: skip
def test_a_users_mistake_is_one_line_and_a_non_zero_exit(
    tmp_path: Path, args: list[str], database: str | None, says: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUTSIDE)}
    if database:
        env["DATABASE_URL"] = database

    ran = _planhat_sync(*args, env=env)

    assert ran.returncode != 0
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert ran.stderr.startswith("error: "), ran.stderr
    assert says in ran.stderr
    if args[0] == "migrate" and "127.0.0.1:9" in says:  # --debug: the whole story
        debug = _planhat_sync("--debug", *args, env=env)
        assert debug.returncode != 0
        assert "Traceback" in debug.stderr


BODIES = {
    "standard": {"model": "companies", "key": {"sourceId": "s1"}, "fields": {"name": "S"},
                 "version": 1},
    "stripe": {"id": "evt_send_1", "type": "customer.created", "data": {"object": {}}},
    "chargebee": {"id": "ev_send_1", "event_type": "customer_created", "content": {}},
    "typeform": {"event_id": "e1", "form_response": {"token": "tok_send_1"}},
    "surveymonkey": {"event_id": "send-1", "event_type": "response_completed"},
    "zendesk": {"id": "zen:event:send-1", "type": "zen:event-type:ticket.created"},
    "intercom": {"id": "notif_send_1", "topic": "ticket.created", "data": {}},
    "planhat": {"model": "tickets", "_id": "6566f0c2e9a1b2c3d4e5f6a7", "action": "updated",
                "time": "2026-11-27T10:00:00Z"},
}  # fmt: skip
SECRETS = {
    "standard": "whsec_c2VuZC1zdGFuZGFyZC1zZWNyZXQtMDEyMw==",
    "chargebee": "hooks:pass-word",
    "surveymonkey": "client-id&client-secret",
}

WRONG = {  # each in its source's shape, so the receiver is what refuses it
    "standard": "whsec_d3Jvbmctc3RhbmRhcmQtc2VjcmV0LTAxMg==",
    "chargebee": "hooks:wrong",
    "surveymonkey": "client-id&wrong",
}


@pytest.fixture
def receiver(here: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real receiver on a socket, with a stored connection that has a secret for every
    source; the CLI finds the same database and key."""
    url = sqlite_url(here)
    migrate(url)
    engine = make_engine(url)
    box = SecretBox(KEY)
    secrets = {source: SECRETS.get(source, f"{source}-secret") for source in SIGNERS}
    add_connection(engine, box, name="acme", planhat_base_url="http://127.0.0.1:9",
                   planhat_token="pt", secrets=secrets)  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PLANHAT_SYNC_SECRET_KEY", KEY)
    web = create_web_app(
        connections=Connections(engine, box=lambda: box, default=lambda: None),
        inbox=Inbox(ThreadedWriter(engine), RecordingDispatcher()),
    )
    with BackgroundServer(web) as server:
        yield server.url
    engine.dispose()


@pytest.mark.parametrize("source", sorted(SIGNERS))
def test_send_signs_as_the_source_does_with_the_connections_secret(
    receiver: str, here: Path, source: str
) -> None:
    body = here / f"{source}.json"
    body.write_text(json.dumps(BODIES[source]))
    target = f"{receiver}/webhooks/acme/{source}"

    sent = run("send", "--source", source, "--connection", "acme", "--url", target, f"@{body}")
    forged = run("send", "--source", source, "--url", target, "--secret", WRONG.get(source,
                 "wrong-secret"), f"@{body}")  # fmt: skip

    assert sent.exit_code == 0, sent.output
    assert sent.stdout.startswith("202 "), sent.stdout
    assert forged.exit_code == 1
    assert forged.stdout.startswith("401 "), forged.stdout
    with session_scope(make_engine(sqlite_url(here))) as session:
        stored = list(session.exec(select(InboxEvent)))
    assert [(event.connection, event.source) for event in stored] == [("acme", source)]


def test_send_refuses_an_unknown_source_with_the_known_ones() -> None:
    line = one_line(run("send", "--source", "paypal", "{}"), 2)

    assert "--source 'paypal': one of standard, stripe" in line
