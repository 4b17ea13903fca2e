"""``planhat-sync dlq …`` and ``planhat-sync replay`` through the command line, on a SQLite
state store, with dead letters made the real way (a flush against the sandbox, a mapping that
fails) and no broker listening (so the CLI leaves the writes to the next sweep)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import structlog
from sqlalchemy import Engine
from sqlmodel import col, select
from typer.testing import CliRunner, Result

from connectors.planhat.client import PlanhatClient
from connectors.planhat.retry import RetryPolicy
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.db import session_scope
from state.tables import DeadLetter, InboxEvent, OutboxItem, RecordState, utcnow
from tests.engine.conftest import change, queue, standard_body, store
from worker.cli import app
from worker.pipeline.flush import FlushPolicy, FlushReport, flush_batch
from worker.pipeline.ingest import ingest
from worker.runtime.ratelimit import LocalRateLimiter

NO_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1
NEXT_SWEEP = "the next sweep writes them"
NO_WAIT = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, max_rate_limit_wait=0)
POLICY = FlushPolicy(batch_size=500, backoff_base=0.01, backoff_cap=0.02, parent_wait_attempts=1)
UNOWNED = "sourceId=l-bad"


class Cli:
    """``planhat-sync`` with this test's database, the sandbox, and no broker."""

    def __init__(self, database_url: str, planhat_url: str) -> None:
        self.env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": NO_BROKER,
            "PLANHAT_BASE_URL": planhat_url,
            "PLANHAT_API_TOKEN": "",
        }

    def __call__(self, *args: str) -> Result:
        # The command points structlog at the runner's stderr, which is closed once it
        # returns; put the logging set-up back so later log lines in this process still
        # work (test_logging_still_works_after_a_cli_command shows why).
        saved = structlog.get_config()
        try:
            return run(*args, env=self.env)
        finally:
            structlog.configure(**saved)

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result.stdout


def run(*args: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def cli(sqlite_engine: Engine, sandbox: BackgroundSandbox) -> Cli:
    return Cli(sqlite_engine.url.render_as_string(hide_password=False), sandbox.url)


@pytest.fixture
def no_other_broker() -> None:
    """The CLI asks for a flush through ``worker.runtime.tasks``, whose settings are read
    once, when it is first imported. Imported earlier in this process with another REDIS_URL,
    it would send real tasks to that broker: refuse rather than do that."""
    tasks = sys.modules.get("worker.runtime.tasks")
    if tasks is not None and tasks.settings.redis_url != NO_BROKER:
        pytest.skip(f"worker.runtime.tasks was imported with REDIS_URL={tasks.settings.redis_url}")


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("t", base_url=sandbox.url, retry=NO_WAIT) as client:
        yield client


def flush(engine: Engine, planhat: PlanhatClient, model: str) -> FlushReport:
    return flush_batch(
        engine,
        planhat,
        LocalRateLimiter(rate_per_minute=1e6, burst=1000),
        connection="default",
        model=model,
        budget="b",
        policy=POLICY,
    )


def bury_unowned_license(engine: Engine, planhat: PlanhatClient) -> None:
    """A license without companyId: Planhat rejects it and it becomes a dead letter."""
    queue(engine, change("licenses", "l-bad", 1, _currency="USD", fromDate="2026-01-01", mrr=5))
    report = flush(engine, planhat, "licenses")
    assert (report.sent, report.dead) == (1, 1)


def bury_unmappable_event(engine: Engine) -> int:
    """An event naming a model Planhat does not have: its mapping fails for good."""
    inbox_id = store(engine, standard_body("widgets", "w1", 1, name="W"), event_id="evt-widget")
    with session_scope(engine) as session:
        ingest(session, inbox_id)
    return inbox_id


def letters(engine: Engine) -> list[DeadLetter]:
    with session_scope(engine) as session:
        return list(session.exec(select(DeadLetter).order_by(col(DeadLetter.id))))


def outbox(engine: Engine) -> list[OutboxItem]:
    with session_scope(engine) as session:
        return list(session.exec(select(OutboxItem)))


def letter_id(engine: Engine, key: str = UNOWNED) -> int:
    [letter] = [letter for letter in letters(engine) if letter.key == key]
    assert letter.id is not None
    return letter.id


# --- dlq list ------------------------------------------------------------------------------


def test_dlq_list_json_shows_every_letter_with_planhat_s_reason(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)
    bury_unmappable_event(sqlite_engine)

    listed = json.loads(cli.ok("dlq", "list", "--json"))

    rejected, unmappable = listed
    assert {name: rejected[name] for name in ("connection", "model", "key", "attempts")} == {
        "connection": "default",
        "model": "licenses",
        "key": UNOWNED,
        "attempts": 1,
    }
    assert rejected["id"] == letter_id(sqlite_engine)
    assert "missing required field companyId" in rejected["reason"]
    assert unmappable["model"] is None
    assert unmappable["key"] == "event:standard:evt-widget"
    assert unmappable["event_id"] == "evt-widget"
    assert unmappable["reason"].startswith("mapping failed:")
    assert "unknown Planhat model 'widgets'" in unmappable["reason"]
    assert datetime.fromisoformat(unmappable["created_at"]) <= utcnow()


def test_dlq_list_prints_one_line_per_letter_with_its_reason(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)
    bury_unmappable_event(sqlite_engine)
    [rejected, unmappable] = letters(sqlite_engine)

    lines = cli.ok("dlq", "list").splitlines()

    assert len(lines) == 2
    assert lines[0].split()[:5] == [str(rejected.id), "default", "licenses", UNOWNED, "attempts=1"]
    assert "missing required field companyId" in lines[0]
    assert lines[1].split()[:4] == [
        str(unmappable.id),
        "default",
        "(event)",
        "event:standard:evt-widget",
    ]
    assert unmappable.reason in lines[1]


def test_dlq_list_says_when_there_are_none(cli: Cli) -> None:
    assert cli.ok("dlq", "list") == "no dead letters\n"
    assert json.loads(cli.ok("dlq", "list", "--json")) == []


# --- dlq retry -----------------------------------------------------------------------------


@pytest.mark.usefixtures("no_other_broker")
def test_dlq_retry_queues_the_write_again_and_forgets_the_letter(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)
    [letter] = letters(sqlite_engine)

    result = cli("dlq", "retry", str(letter.id))

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{letter.id}: queued"
    assert NEXT_SWEEP in result.stdout
    assert letters(sqlite_engine) == []
    [row] = outbox(sqlite_engine)
    assert (row.connection, row.model, row.key) == ("default", "licenses", UNOWNED)
    assert (row.fields, row.version, row.attempts) == (letter.fields, letter.version, 0)


@pytest.mark.usefixtures("no_other_broker")
def test_dlq_retry_all_sends_every_letter_back(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)
    bury_unmappable_event(sqlite_engine)
    [rejected, unmappable] = letters(sqlite_engine)

    result = cli("dlq", "retry", "--all")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        f"{rejected.id}: queued",
        f"{unmappable.id}: event re-run",
    ]
    assert [row.key for row in outbox(sqlite_engine)] == [UNOWNED]
    # the event's mapping still fails: re-run, it is buried again as a new letter
    [again] = letters(sqlite_engine)
    assert (again.key, again.inbox_id) == (unmappable.key, unmappable.inbox_id)
    assert again.id not in (rejected.id, unmappable.id)


def test_dlq_retry_of_an_unknown_id_fails_and_changes_nothing(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)

    result = cli("dlq", "retry", "999")

    assert result.exit_code == 1
    assert result.stderr == "error: no dead letter with id 999\n"
    assert [letter.key for letter in letters(sqlite_engine)] == [UNOWNED]
    assert outbox(sqlite_engine) == []


@pytest.mark.parametrize("args", [[], ["--all", "1"]], ids=["neither", "both"])
def test_dlq_retry_needs_exactly_one_of_an_id_and_all(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient, args: list[str]
) -> None:
    bury_unowned_license(sqlite_engine, planhat)

    result = cli("dlq", "retry", *args)

    assert result.exit_code == 2
    assert "give a dead letter ID or --all" in result.stderr
    assert len(letters(sqlite_engine)) == 1
    assert outbox(sqlite_engine) == []


# --- dlq drop ------------------------------------------------------------------------------


def test_dlq_drop_forgets_the_letter_without_queueing_it(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)
    bury_unmappable_event(sqlite_engine)
    dropped = letter_id(sqlite_engine)

    output = cli.ok("dlq", "drop", str(dropped))

    assert output == f"dropped {dropped}\n"
    assert [letter.key for letter in letters(sqlite_engine)] == ["event:standard:evt-widget"]
    assert outbox(sqlite_engine) == []


def test_dlq_drop_of_an_unknown_id_fails(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)

    result = cli("dlq", "drop", "999")

    assert result.exit_code == 1
    assert result.stderr == "error: no dead letter with id 999\n"
    assert len(letters(sqlite_engine)) == 1


# --- replay --------------------------------------------------------------------------------


def pushed_company(engine: Engine, planhat: PlanhatClient, key: str = "c1") -> int:
    """A company event, ingested and flushed: Planhat has the record, our state says so."""
    inbox_id = store(engine, standard_body("companies", key, 1, name=f"Company {key}"))
    with session_scope(engine) as session:
        assert ingest(session, inbox_id).queued == 1
    assert flush(engine, planhat, "companies").written == 1
    with session_scope(engine) as session:
        assert session.get(RecordState, ("default", "companies", f"sourceId={key}")) is not None
    return inbox_id


def iso(moment: datetime) -> str:
    return moment.isoformat()


def test_replay_of_what_planhat_already_has_queues_nothing(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    before = utcnow() - timedelta(minutes=1)
    pushed_company(sqlite_engine, planhat, "c1")
    pushed_company(sqlite_engine, planhat, "c2")

    report = json.loads(cli.ok("replay", "--since", iso(before)))

    assert report == {"events": 2, "queued": 0, "connections": []}
    assert outbox(sqlite_engine) == []
    assert letters(sqlite_engine) == []


@pytest.mark.usefixtures("no_other_broker")
def test_replay_runs_a_stored_event_again(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    # given an event ingested and pushed, whose pushed state we then forget
    before = utcnow() - timedelta(minutes=1)
    pushed_company(sqlite_engine, planhat, "c1")
    with session_scope(sqlite_engine) as session:
        state = session.get(RecordState, ("default", "companies", "sourceId=c1"))
        assert state is not None
        session.delete(state)

    output = cli.ok("replay", "--since", iso(before), "--source", "standard")

    # then replay maps it again and queues the write (and, with no broker, leaves the flush
    # to the next sweep)
    assert json.loads(output.splitlines()[0]) == {
        "events": 1,
        "queued": 1,
        "connections": ["default"],
    }
    assert NEXT_SWEEP in output
    assert [(row.model, row.key) for row in outbox(sqlite_engine)] == [("companies", "sourceId=c1")]


def test_replay_takes_only_events_received_since_the_time_given(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    pushed_company(sqlite_engine, planhat, "c1")
    later = utcnow() + timedelta(minutes=1)

    report = json.loads(cli.ok("replay", "--since", iso(later)))

    assert report == {"events": 0, "queued": 0, "connections": []}


def test_replay_honours_the_offset_of_the_time_given(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    pushed_company(sqlite_engine, planhat, "c1")
    now = utcnow()
    # one minute ago, written in UTC+02:00; one minute ahead, written in UTC-05:00
    ago = (now - timedelta(minutes=1)).astimezone(timezone(timedelta(hours=2)))
    ahead = (now + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=-5)))

    assert json.loads(cli.ok("replay", "--since", iso(ago)))["events"] == 1
    assert json.loads(cli.ok("replay", "--since", iso(ahead)))["events"] == 0


def test_replay_reads_z_and_naive_times_as_utc(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    pushed_company(sqlite_engine, planhat, "c1")
    ago = (utcnow() - timedelta(minutes=1)).astimezone(UTC).replace(tzinfo=None)

    with_z = json.loads(cli.ok("replay", "--since", ago.isoformat() + "Z"))
    naive = json.loads(cli.ok("replay", "--since", ago.isoformat()))

    assert with_z["events"] == naive["events"] == 1


def test_replay_only_of_another_source_finds_nothing(
    cli: Cli, sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    before = utcnow() - timedelta(minutes=1)
    pushed_company(sqlite_engine, planhat, "c1")

    report = json.loads(cli.ok("replay", "--since", iso(before), "--source", "hubspot"))

    assert report["events"] == 0


def test_replay_of_an_unmappable_event_buries_it_again(cli: Cli, sqlite_engine: Engine) -> None:
    before = utcnow() - timedelta(minutes=1)
    inbox_id = bury_unmappable_event(sqlite_engine)

    report = json.loads(cli.ok("replay", "--since", iso(before)))

    assert report == {"events": 1, "queued": 0, "connections": []}
    assert [letter.inbox_id for letter in letters(sqlite_engine)] == [inbox_id, inbox_id]
    with session_scope(sqlite_engine) as session:
        event = session.get(InboxEvent, inbox_id)
        assert event is not None
        assert event.status == "failed"


def test_replay_with_a_time_that_is_not_iso_fails(cli: Cli) -> None:
    result = cli("replay", "--since", "not-a-time")

    assert result.exit_code == 2
    assert result.stderr == "error: --since 'not-a-time' is not an ISO time\n"


# --- the process after a command -------------------------------------------------------------


def test_logging_still_works_after_a_cli_command(cli: Cli, sqlite_engine: Engine) -> None:
    # given a dlq command run in this process, as CliRunner (or anything embedding the CLI)
    # runs it, without putting the logging set-up back
    result = run("dlq", "list", env=cli.env)
    assert result.exit_code == 0, result.stderr

    # when later code logs (an unmappable event logs a warning and becomes a dead letter)
    inbox_id = bury_unmappable_event(sqlite_engine)

    # then it is buried, rather than failing on the command's closed stderr
    assert [letter.inbox_id for letter in letters(sqlite_engine)] == [inbox_id]
