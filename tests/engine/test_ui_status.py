"""``planhat-sync status`` as a health check, and the status page's routes without a
browser: the token gate, an event's story, a record's. State made the real way: events
stored and ingested, flushed against the sandbox, a record Planhat refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.connections import Connections, Tenant, add_connection
from state.crypto import SecretBox
from state.db import session_scope
from tests.engine.conftest import change, queue, standard_body, store
from tests.engine.test_dlq_cli import NO_BROKER, NO_WAIT, bury_unowned_license, flush
from worker.cli import app
from worker.ops.ui import COOKIE, StatusPage, mount_status_page
from worker.pipeline.ingest import ingest

ADMIN = "the-admin-token"


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient("t", base_url=sandbox.url, retry=NO_WAIT) as client:
        yield client


def status(engine: Engine, planhat_url: str, *args: str, key: str = "") -> Result:
    env = {
        "PLANHAT_SYNC_SECRET_KEY": key,
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "REDIS_URL": NO_BROKER,  # the budget is then "not known", never an error
        "PLANHAT_BASE_URL": planhat_url,
        "PLANHAT_API_TOKEN": "",
    }
    return CliRunner().invoke(app, ["status", *args], env=env)


def synced(engine: Engine, planhat: PlanhatClient) -> None:
    """One event stored, ingested and flushed: a company in Planhat."""
    inbox_id = store(engine, standard_body("companies", "acme", 1, name="Acme"), "evt-acme")
    with session_scope(engine) as session:
        ingest(session, inbox_id)
    assert flush(engine, planhat, "companies").written == 1


# --- planhat-sync status -----------------------------------------------------------------


def test_status_exits_0_when_all_is_well(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    synced(sqlite_engine, planhat)

    result = status(sqlite_engine, sandbox.url)  # a local sandbox needs no token

    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "default"
    assert "received 1/1, applied 1/1, ignored 0/0, dead 0/0" in lines[1]
    assert "backlog 0 " in lines[2]


def test_status_shows_every_connection_each_with_its_own_numbers(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    key = Fernet.generate_key().decode()
    add_connection(sqlite_engine, SecretBox(key), name="tenant-b", planhat_base_url=sandbox.url,
                   planhat_token="token-b", secrets={"standard": "whsec_b"})  # fmt: skip
    synced(sqlite_engine, planhat)
    store(sqlite_engine, standard_body("companies", "b1", 1, name="B"), connection="tenant-b")

    result = status(sqlite_engine, sandbox.url, "--max-lag", "3600", key=key)

    assert result.exit_code == 0, (result.stdout, result.stderr)
    default, tenant_b = result.stdout.split("\ntenant-b\n")
    assert "received 1/1, applied 1/1" in default
    assert "received 1/1, applied 0/0" in tenant_b
    assert "backlog 1 (1 events" in tenant_b


def test_status_exits_1_with_one_line_per_problem(
    sqlite_engine: Engine, planhat: PlanhatClient
) -> None:
    # given a dead letter, a change waiting, and no Planhat token for where it goes
    bury_unowned_license(sqlite_engine, planhat)
    queue(sqlite_engine, change("companies", "waiting", 1, name="W"))

    result = status(sqlite_engine, "https://api.planhat.com", "--max-lag", "0")

    assert result.exit_code == 1
    problems = result.stderr.splitlines()
    assert len(problems) == 3, problems
    assert problems[0].startswith("problem: default: no Planhat token")
    assert problems[1] == "problem: default: 1 dead letter(s) (planhat-sync dlq list)"
    assert problems[2].startswith("problem: default: the oldest pending change has waited")
    assert "Traceback" not in result.stdout + result.stderr


def test_status_json_carries_the_same_numbers(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    synced(sqlite_engine, planhat)
    bury_unowned_license(sqlite_engine, planhat)

    result = status(sqlite_engine, sandbox.url, "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    [default] = report["connections"]
    assert default["last_hour"] == {"received": 1, "applied": 1, "ignored": 0, "dead": 1}
    assert (default["dead_letters"], default["backlog"]) == (1, 0)
    assert report["problems"] == ["default: 1 dead letter(s) (planhat-sync dlq list)"]


# --- the page's routes -------------------------------------------------------------------


def page_client(engine: Engine, planhat_url: str, token: str | None = ADMIN) -> TestClient:
    tenant = Tenant(name="default", planhat_base_url=planhat_url, planhat_token="t", secrets={})
    box = SecretBox(Fernet.generate_key().decode())
    connections = Connections(engine, box=lambda: box, default=lambda: tenant)
    web = FastAPI()
    mount_status_page(web, StatusPage(engine=engine, connections=connections, admin_token=token))
    return TestClient(web, follow_redirects=False)


def logged_in(engine: Engine, planhat_url: str) -> TestClient:
    client = page_client(engine, planhat_url)
    assert client.get(f"/ui/login?token={ADMIN}").status_code == 303
    return client


def test_without_an_admin_token_there_is_no_page(sqlite_engine: Engine) -> None:
    client = page_client(sqlite_engine, "http://127.0.0.1:1", token=None)

    for path in ("/ui", "/ui/login?token=x", "/ui/letters/1"):
        answer = client.get(path)
        assert answer.status_code == 404
        assert answer.text == (
            "the status page is off: set PLANHAT_SYNC_ADMIN_TOKEN to turn it on\n"
        )


def test_the_page_wants_the_token_and_keeps_only_its_hash(sqlite_engine: Engine) -> None:
    client = page_client(sqlite_engine, "http://127.0.0.1:1")

    assert client.get("/ui").headers["location"] == "/ui/login"
    assert client.get("/ui/login?token=wrong").status_code == 401
    assert client.post("/ui/login", data={"token": "wrong"}).status_code == 401
    assert client.post("/ui/letters/1/drop").headers["location"] == "/ui/login"
    answer = client.post("/ui/login", data={"token": ADMIN})

    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower()
    assert ADMIN not in cookie
    assert client.get("/ui").status_code == 200
    client.cookies.set(COOKIE, "forged")
    assert client.get("/ui").status_code == 303


def test_an_event_s_story_ends_with_its_planhat_id(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    synced(sqlite_engine, planhat)
    planhat_id = planhat.get("companies", "srcid-acme")["_id"]

    page = logged_in(sqlite_engine, sandbox.url).get("/ui/search?q=evt-acme").text

    assert page.index('data-stage="received"') < page.index('data-stage="mapped"')
    assert page.index('data-stage="mapped"') < page.index('data-stage="sent"')
    assert f"companies sourceId=acme: sent; Planhat _id {planhat_id}" in page


def test_a_refused_record_s_story_names_its_dead_letter(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)
    client = logged_in(sqlite_engine, sandbox.url)

    page = client.get("/ui/search?q=l-bad").text

    assert 'data-stage="dead"' in page
    assert "missing required field companyId" in page
    assert client.get("/ui/search?q=nothing-like-it").text.count("Nothing found") == 1


def test_drop_forgets_the_letter(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    bury_unowned_license(sqlite_engine, planhat)
    client = logged_in(sqlite_engine, sandbox.url)
    assert 'data-letter="1"' in client.get("/ui").text

    answer = client.post("/ui/letters/1/drop")

    assert answer.status_code == 303
    assert "dropped" in client.get(answer.headers["location"]).text
    assert 'data-letter="1"' not in client.get("/ui").text
    again = client.post("/ui/letters/1/drop").headers["location"]
    assert "no dead letter with id 1" in client.get(again).text
