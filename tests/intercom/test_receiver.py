"""Intercom notifications at the real receiver: signed ones are kept (a topic we do not
mirror too, to be marked ignored), a forged one is a 401 with nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import select

from connectors.intercom.verify import signed_headers
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import make_engine, migrate, session_scope
from state.tables import InboxEvent
from tests.fakes import RecordingDispatcher
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.receiver import create_web_app

SECRET = "intercom-client-secret"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "intercom"
PATH = "/webhooks/default/intercom"


@pytest.fixture
def web(tmp_path: Any) -> Iterator[tuple[TestClient, Any]]:
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    engine = make_engine(url)
    box = SecretBox(Fernet.generate_key().decode())
    default = Tenant(name="default", planhat_base_url="http://127.0.0.1:9", planhat_token="t",
                     secrets={"intercom": SECRET})  # fmt: skip
    app = create_web_app(
        connections=Connections(engine, box=lambda: box, default=lambda: default),
        inbox=Inbox(ThreadedWriter(engine), RecordingDispatcher()),
        max_body_bytes=64 * 1024,
        clock=lambda: 1_768_114_251,
    )
    yield TestClient(app, raise_server_exceptions=False), engine
    engine.dispose()


def stored(engine: Any) -> list[tuple[str, str]]:
    with session_scope(engine) as session:
        rows = session.exec(select(InboxEvent.source, InboxEvent.event_id)).all()
        assert session.exec(select(func.count()).select_from(InboxEvent)).one() == len(rows)
        return [(str(s), str(e)) for s, e in rows]


@pytest.mark.parametrize("forgery", ["other secret", "changed body", "no header"])
def test_a_forged_notification_is_401_and_nothing_is_stored(
    web: tuple[TestClient, Any], forgery: str
) -> None:
    http, engine = web
    body = (FIXTURES / "ticket_created.json").read_bytes()
    headers = signed_headers("not-the-secret" if forgery == "other secret" else SECRET, body)
    if forgery == "no header":
        del headers["X-Hub-Signature"]
    sent = body.replace(b"ticket.created", b"ticket.closed") if forgery == "changed body" else body
    answer = http.post(PATH, content=sent, headers=headers)
    assert answer.status_code == 401
    assert stored(engine) == []


def test_signed_notifications_are_kept_by_their_id_once(web: tuple[TestClient, Any]) -> None:
    http, engine = web
    created = (FIXTURES / "ticket_created.json").read_bytes()
    ping = (FIXTURES / "ping.json").read_bytes()
    answers = [http.post(PATH, content=b, headers=signed_headers(SECRET, b))
               for b in (created, created, ping)]  # fmt: skip
    assert [a.status_code for a in answers] == [202, 200, 202]
    assert stored(engine) == [
        ("intercom", "notif_381b4609-2b35-4720-8389-605f220e402a"),
        ("intercom", "notif_7a0b4b1e-ping"),
    ]
