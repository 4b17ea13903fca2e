"""The webhook receiver: what it accepts, what it refuses (storing nothing), and why."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import select

from connectors.standard.verify import sign, signed_headers
from state.connections import Connections, Tenant, add_connection
from state.crypto import SecretBox
from state.db import make_engine, migrate, session_scope
from state.tables import InboxEvent
from tests.fakes import RecordingDispatcher
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.receiver import create_web_app

SECRET = "whsec_" + base64.b64encode(b"default-secret-0123456789").decode()
OTHER = "whsec_" + base64.b64encode(b"another-tenant-secret-0000").decode()
NOW = 1_790_000_000
BODY = json.dumps(
    {"model": "licenses", "key": {"sourceId": "sub_1"}, "fields": {"mrr": 5}, "version": 1}
).encode()


def signed(
    body: bytes = BODY, secret: str = SECRET, event_id: str = "evt_1", at: int = NOW
) -> dict[str, str]:
    return signed_headers(secret, event_id, body, at)


class Receiver:
    def __init__(self, engine: Engine, max_body_bytes: int = 4096) -> None:
        self.engine = engine
        self.dispatcher = RecordingDispatcher()
        box = SecretBox(Fernet.generate_key().decode())
        add_connection(
            engine,
            box,
            name="acme",
            planhat_base_url="http://127.0.0.1:9",
            planhat_token="acme-token",
            secrets={"standard": OTHER},
        )
        default = Tenant(
            name="default",
            planhat_base_url="http://127.0.0.1:9",
            planhat_token="t",
            secrets={"standard": SECRET},
        )
        self.app = create_web_app(
            connections=Connections(engine, box=lambda: box, default=lambda: default),
            inbox=Inbox(ThreadedWriter(engine), self.dispatcher),
            max_body_bytes=max_body_bytes,
            clock=lambda: NOW,
        )
        self.http = TestClient(self.app, raise_server_exceptions=False)

    def post(
        self, path: str = "/webhooks/default/standard", body: bytes = BODY, **headers: Any
    ) -> Any:
        return self.http.post(
            path, content=body, headers=headers.pop("headers", None) or signed(body)
        )

    def stored(self) -> int:
        with session_scope(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(InboxEvent)).one())


@pytest.fixture
def receiver(tmp_path: Any) -> Iterator[Receiver]:
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    engine = make_engine(url)
    yield Receiver(engine)
    engine.dispose()


def test_a_signed_event_is_stored_enqueued_and_answered_202(receiver: Receiver) -> None:
    answer = receiver.post()

    assert answer.status_code == 202
    assert answer.json() == {"status": "accepted", "inbox_id": answer.json()["inbox_id"]}
    assert receiver.dispatcher.ingested == [answer.json()["inbox_id"]]
    assert receiver.stored() == 1


def test_a_duplicate_delivery_answers_200_and_stores_nothing_new(receiver: Receiver) -> None:
    receiver.post()
    again = receiver.post()

    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": "evt_1"}
    assert receiver.stored() == 1
    assert len(receiver.dispatcher.ingested) == 1


def test_any_of_several_signatures_may_match(receiver: Receiver) -> None:
    headers = signed()
    headers["webhook-signature"] = f"v1,bm90LWl0 {headers['webhook-signature']}"

    assert receiver.post(headers=headers).status_code == 202


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"webhook-signature": "v1,bm90LWl0"}, "no webhook-signature matches"),
        ({"webhook-signature": sign(OTHER, "evt_1", NOW, BODY)}, "no webhook-signature matches"),
        ({"webhook-timestamp": str(NOW - 301)}, "more than 5 minutes"),
        ({"webhook-timestamp": str(NOW + 301)}, "more than 5 minutes"),
        ({"webhook-timestamp": "yesterday"}, "not a Unix time"),
        ({"webhook-id": ""}, "missing webhook-id"),
        ({"webhook-signature": ""}, "missing webhook-signature"),
    ],
)
def test_a_bad_missing_or_expired_signature_is_401_and_stores_nothing(
    receiver: Receiver, change: dict[str, str], reason: str
) -> None:
    headers = {**signed(), **change}

    answer = receiver.post(headers=headers)

    assert answer.status_code == 401
    assert reason in answer.json()["error"]
    assert receiver.stored() == 0


def test_a_body_changed_after_signing_is_401(receiver: Receiver) -> None:
    tampered = BODY.replace(b'"mrr": 5', b'"mrr": 9')

    answer = receiver.http.post("/webhooks/default/standard", content=tampered, headers=signed())

    assert answer.status_code == 401
    assert receiver.stored() == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b'{"model": "licences", "key": {"sourceId": "x"}, "version": 1}', "unknown Planhat model"),
        (b'{"model": "licenses", "key": {"name": "x"}, "version": 1}', "key must be one of"),
        (b'{"model": "licenses", "key": {"sourceId": "x"}}', "version is required"),
        (json.dumps({"changes": [json.loads(BODY)] * 1001}).encode()[:4000], "body is not JSON"),
        # values the state store cannot hold: named, refused now, not stuck later
        (b'{"model": "licenses", "key": {"sourceId": "x"}, "version": 1, "fields": {"mrr": NaN}}',
         "NaN is not JSON"),
        (b'{"model": "licenses", "key": {"sourceId": "x"}, "version": 1, "fields": {"mrr": 1e999}}',
         "the number 1e999 is too large"),
        (b'{"model": "licenses", "key": {"sourceId": "x"}, "version": 10000000000000000000000000}',
         "a version must fit in 64 bits"),
        (json.dumps({"model": "licenses", "key": {"sourceId": "x" * 300}, "version": 1}).encode(),
         "the key is 300 characters"),
    ],
)  # fmt: skip
def test_an_unparsable_event_is_400_with_the_reason_and_stores_nothing(
    receiver: Receiver, body: bytes, reason: str
) -> None:
    answer = receiver.post(body=body)

    assert answer.status_code == 400
    assert reason in answer.json()["error"]
    assert receiver.stored() == 0


def test_more_than_1000_changes_in_one_event_is_400(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/big.db"
    migrate(url)
    big = Receiver(make_engine(url), max_body_bytes=1024 * 1024)
    body = json.dumps({"changes": [json.loads(BODY)] * 1001}).encode()

    answer = big.post(body=body)

    assert answer.status_code == 400
    assert "at most 1000 changes" in answer.json()["error"]
    assert big.stored() == 0


def test_a_body_over_the_limit_is_413_and_stores_nothing(receiver: Receiver) -> None:
    body = b'{"pad": "' + b"x" * 5000 + b'"}'

    declared = receiver.post(body=body)
    streamed = receiver.http.post(
        "/webhooks/default/standard",
        content=iter([body[:3000], body[3000:]]),  # no Content-Length: read until the limit
        headers=signed(body),
    )

    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert receiver.stored() == 0


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/webhooks/nobody/standard", "unknown connection 'nobody'"),
        ("/webhooks/default/nosuchsource", "unknown source 'nosuchsource'"),
        ("/webhooks/%00evil/standard", "unknown connection"),
        ("/webhooks/" + "x" * 300 + "/standard", "unknown connection"),
    ],
)
def test_an_unknown_connection_or_source_is_404(receiver: Receiver, path: str, reason: str) -> None:
    answer = receiver.post(path)

    assert answer.status_code == 404
    assert reason in answer.json()["error"]
    assert receiver.stored() == 0


def test_an_event_id_that_cannot_be_a_key_is_400(receiver: Receiver) -> None:
    answer = receiver.post(headers=signed(event_id="has space"))

    assert answer.status_code == 400
    assert "event id" in answer.json()["error"]
    assert receiver.stored() == 0


def test_a_wrong_content_type_is_415(receiver: Receiver) -> None:
    headers = {**signed(), "content-type": "text/plain"}

    answer = receiver.post(headers=headers)

    assert answer.status_code == 415
    assert receiver.stored() == 0


def test_an_event_signed_for_one_connection_is_refused_at_anothers_url(receiver: Receiver) -> None:
    for_default = receiver.post("/webhooks/acme/standard", headers=signed(secret=SECRET))
    for_acme = receiver.post("/webhooks/default/standard", headers=signed(secret=OTHER))
    right = receiver.post("/webhooks/acme/standard", headers=signed(secret=OTHER))

    assert (for_default.status_code, for_acme.status_code, right.status_code) == (401, 401, 202)
    with session_scope(receiver.engine) as session:
        [event] = session.exec(select(InboxEvent)).all()
    assert event.connection == "acme"


def test_health_and_readiness(receiver: Receiver) -> None:
    assert receiver.http.get("/healthz").json() == {"ok": True}
    assert receiver.http.get("/readyz").status_code == 200
    receiver.dispatcher.broker_up = False
    not_ready = receiver.http.get("/readyz")
    assert not_ready.status_code == 503
    assert "broker down" in not_ready.json()["problem"]
