"""A wrong or changed PLANHAT_SYNC_SECRET_KEY: the receiver says 503 (never 500) and
stores nothing, ``/readyz`` names the connections it cannot open, and every long-running
command refuses to start with one line."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import select
from typer.testing import CliRunner, Result

from connectors.standard.verify import signed_headers
from state.connections import Connections, Tenant, add_connection
from state.crypto import SecretBox
from state.db import session_scope
from state.tables import InboxEvent
from tests.fakes import RecordingDispatcher
from worker.cli import app
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.receiver import create_web_app

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
SECRET = "whsec_" + base64.b64encode(b"acme-secret-0123456789012").decode()
BODY = json.dumps(
    {"model": "companies", "key": {"sourceId": "c1"}, "fields": {"name": "C"}, "version": 1}
).encode()
NOW = 1_790_000_000
ADD_ACME = [
    "connections", "add", "acme", "--planhat-token", "pt-1", "--secret", f"standard={SECRET}",
]  # fmt: skip


def add_acme(engine: Engine, key: str = KEY_A) -> None:
    add_connection(
        engine,
        SecretBox(key),
        name="acme",
        planhat_base_url="http://127.0.0.1:9",
        planhat_token="acme-token",
        secrets={"standard": SECRET},
    )


def receiver(engine: Engine, key: str) -> TestClient:
    default = Tenant(
        name="default", planhat_base_url="http://127.0.0.1:9", planhat_token="t",
        secrets={"standard": SECRET},
    )  # fmt: skip
    connections = Connections(engine, box=lambda: SecretBox(key), default=lambda: default)
    app = create_web_app(
        connections=connections,
        inbox=Inbox(ThreadedWriter(engine), RecordingDispatcher()),
        clock=lambda: NOW,
    )
    return TestClient(app, raise_server_exceptions=False)


def post(http: TestClient, connection: str, event_id: str = "evt_1") -> int:
    headers = signed_headers(SECRET, event_id, BODY, NOW)
    answer = http.post(f"/webhooks/{connection}/standard", content=BODY, headers=headers)
    return answer.status_code


def stored(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(InboxEvent)).one())


@pytest.fixture
def quiet() -> Iterator[None]:
    with structlog.testing.capture_logs():
        yield


@pytest.mark.usefixtures("quiet")
def test_a_webhook_for_a_connection_the_key_cannot_open_is_503_and_stores_nothing(
    sqlite_engine: Engine,
) -> None:
    # given acme sealed under key A, and a receiver that has key B
    add_acme(sqlite_engine)
    http = receiver(sqlite_engine, KEY_B)

    # when acme's sender delivers an event (twice: the second meets the cached failure)
    first, second = post(http, "acme"), post(http, "acme", "evt_2")

    # then it is told to come back later, and nothing is stored
    assert (first, second) == (503, 503)
    assert stored(sqlite_engine) == 0


@pytest.mark.usefixtures("quiet")
def test_a_locked_connection_does_not_stop_the_others(sqlite_engine: Engine) -> None:
    add_acme(sqlite_engine)
    http = receiver(sqlite_engine, KEY_B)

    assert post(http, "acme") == 503
    assert post(http, "default") == 202
    assert stored(sqlite_engine) == 1


def test_readyz_is_503_naming_the_connections_the_key_cannot_open(sqlite_engine: Engine) -> None:
    add_acme(sqlite_engine)

    wrong = receiver(sqlite_engine, KEY_B).get("/readyz")
    right = receiver(sqlite_engine, KEY_A).get("/readyz")

    assert wrong.status_code == 503
    assert "PLANHAT_SYNC_SECRET_KEY does not open" in wrong.json()["problem"]
    assert "'acme'" in wrong.json()["problem"]
    assert right.status_code == 200


def test_readyz_opens_the_stored_secrets_once_per_interval(sqlite_engine: Engine) -> None:
    add_acme(sqlite_engine)
    opened: list[int] = []

    def box() -> SecretBox:
        opened.append(1)
        return SecretBox(KEY_A)

    connections = Connections(sqlite_engine, box=box, default=lambda: None, check_every=60)
    http = TestClient(
        create_web_app(
            connections=connections,
            inbox=Inbox(ThreadedWriter(sqlite_engine), RecordingDispatcher()),
        )
    )

    answers = [http.get("/readyz").status_code for _ in range(5)]

    assert answers == [200] * 5
    assert len(opened) == 1


def run(tmp_path: Path, key: str, *args: str) -> Result:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/state.db",
        "PLANHAT_SYNC_SECRET_KEY": key,
        "PLANHAT_API_TOKEN": "pt-env",  # a worker without one would not start (startup.py)
    }
    saved = structlog.get_config()  # the CLI points structlog at the runner's stderr
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        structlog.configure(**saved)


def one_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("command", ["web", "worker", "beat"])
def test_a_process_refuses_to_start_with_one_line_when_the_key_does_not_open(
    tmp_path: Path, command: str
) -> None:
    assert run(tmp_path, KEY_A, *ADD_ACME).exit_code == 0

    line = one_line(run(tmp_path, KEY_B, command))

    assert line.startswith("error: PLANHAT_SYNC_SECRET_KEY does not open the stored secrets")
    assert "'acme'" in line


def test_a_key_that_is_not_a_fernet_key_stops_a_process_with_one_line(tmp_path: Path) -> None:
    line = one_line(run(tmp_path, f"{KEY_A},not-a-key", "worker"))

    assert line == (
        "error: key 2 of 2 in PLANHAT_SYNC_SECRET_KEY is not a Fernet key "
        "(32 url-safe base64 bytes; planhat-sync keys generate prints one)"
    )
    assert "not-a-key" not in line


def test_dev_refuses_to_start_when_its_key_does_not_open_its_connections(tmp_path: Path) -> None:
    assert run(tmp_path, KEY_A, *ADD_ACME).exit_code == 0

    # dev keeps its state in the data directory; the environment's key wins over its file
    env = {"PLANHAT_SYNC_SECRET_KEY": KEY_B, "DATABASE_URL": f"sqlite:///{tmp_path}/state.db"}
    saved = structlog.get_config()
    try:
        result = CliRunner().invoke(
            app, ["dev", "--no-serve", "--data-dir", str(tmp_path / "dev")], env=env
        )
    finally:
        structlog.configure(**saved)

    assert "'acme'" in one_line(result)


def test_a_connection_sealed_under_another_key_is_not_added(tmp_path: Path) -> None:
    assert run(tmp_path, KEY_A, *ADD_ACME).exit_code == 0

    result = run(tmp_path, KEY_B, "connections", "add", "beta", "--planhat-token", "pt-2")

    assert one_line(result).startswith("error: not added: PLANHAT_SYNC_SECRET_KEY does not open")
    listed = json.loads(run(tmp_path, KEY_A, "connections", "list").stdout)
    assert [row["name"] for row in listed] == ["acme"]


def test_connections_list_shows_a_connection_it_cannot_open_as_locked(tmp_path: Path) -> None:
    assert run(tmp_path, KEY_A, *ADD_ACME).exit_code == 0

    listed = run(tmp_path, KEY_B, "connections", "list")

    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["sources"] == "(locked: PLANHAT_SYNC_SECRET_KEY does not open it)"
