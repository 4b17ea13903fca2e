"""Hostile requests to the receiver, on every source: never a 5xx, never stored, and the
reason is said. Many are signed with the connection's own secret, so the signature check
passes and what comes after it (reading the body, the event id, the mapping of a source
that checks on receipt) is what is attacked."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func
from sqlmodel import select

from connectors.chargebee.verify import basic_auth
from connectors.intercom.verify import sign as intercom_sign
from connectors.sources import SOURCES
from connectors.standard.verify import signed_headers
from connectors.stripe.verify import sign as stripe_sign
from connectors.surveymonkey.verify import sign as surveymonkey_sign
from connectors.typeform.verify import sign as typeform_sign
from connectors.zendesk.verify import signed_headers as zendesk_signed_headers
from state.connections import Connections, Tenant
from state.crypto import SecretBox
from state.db import make_engine, migrate, session_scope
from state.tables import InboxEvent
from tests.fakes import RecordingDispatcher
from worker.intake.inbox import Inbox, ThreadedWriter
from worker.intake.receiver import create_web_app

SECRETS = {
    "standard": "whsec_" + base64.b64encode(b"hostile-standard-secret-0").decode(),
    "stripe": "whsec_hostile-stripe-secret",
    "chargebee": "hook-user:hook-password",
    "typeform": "hostile-typeform-secret",
    "surveymonkey": "client-id&client-secret",
    "planhat": "hostile-automation-secret",
    "zendesk": "hostile-zendesk-signing-secret",
    "intercom": "hostile-intercom-client-secret",
}
# A float, as time.time() gives in production: a timestamp too large for a float must be
# refused, not overflow the comparison with it.
NOW = 1_790_000_000.5
DEEP = 100_000


WRONG = {
    "standard": "whsec_" + base64.b64encode(b"another-standard-secret").decode(),
    "stripe": "whsec_another-stripe-secret",
    "chargebee": "hook-user:another-password",
    "typeform": "another-typeform-secret",
    "surveymonkey": "client-id&another-secret",
    "planhat": "another-automation-secret",
    "zendesk": "another-zendesk-signing-secret",
    "intercom": "another-intercom-client-secret",
}


def signed(
    source: str, body: bytes, event_id: str = "evt_ok", secrets: Mapping[str, str] = SECRETS
) -> dict[str, Any]:
    """Headers that pass ``source``'s check for ``body`` (``event_id``: standard's, which
    is a header; the others carry theirs in the body)."""
    secret = secrets[source]
    headers: dict[str, Any] = {"content-type": "application/json"}
    if source == "standard":
        headers.update(signed_headers(secret, event_id, body, int(NOW)))
        # A header travels as bytes: the receiver reads them as latin-1, as signed here.
        headers["webhook-id"] = event_id.encode("latin-1")
    elif source == "stripe":
        headers["stripe-signature"] = stripe_sign(secret, int(NOW), body)
    elif source == "chargebee":
        headers["authorization"] = basic_auth(*secret.split(":", 1))
    elif source == "typeform":
        headers["typeform-signature"] = typeform_sign(secret, body)
    elif source == "zendesk":
        when = datetime.fromtimestamp(NOW, UTC)
        headers.update(zendesk_signed_headers(secret, body, when))
    elif source == "intercom":
        headers["X-Hub-Signature"] = intercom_sign(secret, body)
    elif source == "planhat":  # an Automation signs nothing: a secret in a header
        headers["authorization"] = f"Bearer {secret}"
    else:
        headers["sm-signature"] = surveymonkey_sign(secret, body)
        headers["sm-apikey"] = secret.split("&", 1)[0]
    return headers


def envelope(source: str, event_id: Any, payload: bytes = b"{}") -> bytes:
    """A body shaped like ``source``'s events, with this id and ``payload`` (raw JSON,
    spliced in as bytes: it may be nested deeper than json.dumps could write)."""
    ident = json.dumps(event_id, allow_nan=True).encode()
    return {
        "standard": b'{"model": "companies", "key": {"sourceId": "co_1"}, "version": 1, '
        b'"fields": {"name": ' + payload + b"}}",
        "stripe": b'{"id": ' + ident + b', "object": "event", "type": "customer.created", '
        b'"created": 1, "data": {"object": ' + payload + b"}}",
        "chargebee": b'{"id": ' + ident + b', "event_type": "customer_created", '
        b'"occurred_at": 1, "content": ' + payload + b"}",
        "typeform": b'{"event_id": "01J", "event_type": "form_response", '
        b'"form_response": {"token": ' + ident + b', "answers": ' + payload + b"}}",
        "surveymonkey": b'{"event_id": ' + ident + b', "event_type": "response_completed", '
        b'"object_id": "1", "resources": ' + payload + b"}",
        "planhat": b'{"model": "tasks", "_id": ' + ident + b', "action": "updated", '
        b'"time": ' + payload + b"}",
        "zendesk": b'{"id": ' + ident + b', "type": "zen:event-type:ticket.created", '
        b'"subject": "zen:ticket:1", "detail": ' + payload + b"}",
        "intercom": b'{"type": "notification_event", "id": ' + ident + b", "
        b'"topic": "ticket.created", "data": {"item": ' + payload + b"}}",
    }[source]


class Receiver:
    """The receiver for the ``default`` connection, which has a secret for every source."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        box = SecretBox(Fernet.generate_key().decode())
        tenant = Tenant(
            name="default", planhat_base_url="http://127.0.0.1:9", planhat_token="t",
            secrets=SECRETS,
        )  # fmt: skip
        self.app = create_web_app(
            connections=Connections(engine, box=lambda: box, default=lambda: tenant),
            inbox=Inbox(ThreadedWriter(engine), RecordingDispatcher()),
            clock=lambda: NOW,
        )

    def stored(self) -> int:
        with session_scope(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(InboxEvent)).one())


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    url = f"sqlite:///{tmp_path_factory.mktemp('hostile')}/state.db"
    migrate(url)
    engine = make_engine(url)
    yield Receiver(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def http(receiver: Receiver) -> Iterator[TestClient]:
    with TestClient(receiver.app, raise_server_exceptions=False) as client:
        yield client


def refused(answer: Any, *statuses: int) -> str:
    assert answer.status_code in statuses, (answer.status_code, answer.text)
    error: str = answer.json()["error"]
    return error


# --- the three crashes of the issue, on every source ------------------------------------

SIGNATURE_HEADERS = {
    "standard": "webhook-signature",
    "stripe": "stripe-signature",
    "chargebee": "authorization",
    "typeform": "typeform-signature",
    "surveymonkey": "sm-signature",
    "planhat": "authorization",
    "zendesk": "X-Zendesk-Webhook-Signature",
    "intercom": "X-Hub-Signature",
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_a_non_ascii_byte_in_the_signature_header_is_401_and_stores_nothing(
    receiver: Receiver, http: TestClient, source: str
) -> None:
    body = envelope(source, "evt_ok")
    headers = signed(source, body)
    name = SIGNATURE_HEADERS[source]
    headers[name] = (str(headers[name]) + "\xe9").encode("latin-1")

    answer = http.post(f"/webhooks/default/{source}", content=body, headers=headers)

    refused(answer, 401)
    assert receiver.stored() == 0


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize(
    "payload",
    [b"[" * DEEP + b"]" * DEEP, b'{"a": ' * DEEP + b"1" + b"}" * DEEP, b"[" * 65 + b"]" * 65],
    ids=["arrays-100000", "objects-100000", "arrays-65"],
)
def test_a_validly_signed_body_nested_too_deep_is_refused_with_the_reason(
    receiver: Receiver, http: TestClient, source: str, payload: bytes
) -> None:
    body = envelope(source, "evt_ok", payload)

    answer = http.post(f"/webhooks/default/{source}", content=body, headers=signed(source, body))

    assert "nested more than 64 levels deep" in refused(answer, 400, 401)
    assert receiver.stored() == 0


@pytest.mark.parametrize("source", ["stripe", "chargebee", "typeform", "surveymonkey"])
@pytest.mark.parametrize(
    "event_id", ["x" * 255 + "\n", "evt_x\n", "x" * 256, "evt x", "evt_\x00", "évt"]
)
def test_an_event_id_that_cannot_be_a_key_is_400_and_stores_nothing(
    receiver: Receiver, http: TestClient, source: str, event_id: str
) -> None:
    body = envelope(source, event_id)

    answer = http.post(f"/webhooks/default/{source}", content=body, headers=signed(source, body))

    assert "event id" in refused(answer, 400, 401)
    assert receiver.stored() == 0


def test_an_event_id_with_a_trailing_newline_is_not_another_key_for_the_same_event(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    migrate(url)
    own = Receiver(make_engine(url))
    http = TestClient(own.app)
    plain, newline = envelope("stripe", "evt_x"), envelope("stripe", "evt_x\n")

    first = http.post("/webhooks/default/stripe", content=plain, headers=signed("stripe", plain))
    again = http.post(
        "/webhooks/default/stripe", content=newline, headers=signed("stripe", newline)
    )

    assert (first.status_code, again.status_code) == (202, 400)
    assert own.stored() == 1


@pytest.mark.parametrize(
    ("source", "header", "value"),
    [
        ("standard", "webhook-timestamp", "9" * 400),
        ("standard", "webhook-timestamp", "1_790_000_000"),
        ("standard", "webhook-timestamp", "\u0661\u0667\u0669"),
        ("stripe", "stripe-signature", "t=" + "9" * 400 + ",v1=00"),
        ("stripe", "stripe-signature", "t=-" + "9" * 400 + ",v1=00"),
    ],
)
def test_a_timestamp_that_is_not_a_plain_unix_time_is_401(
    receiver: Receiver, http: TestClient, source: str, header: str, value: str
) -> None:
    body = envelope(source, "evt_ok")
    headers = {**signed(source, body), header: value.encode()}

    answer = http.post(f"/webhooks/default/{source}", content=body, headers=headers)

    assert "Unix time" in refused(answer, 401)
    assert receiver.stored() == 0


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity", b"1e999999"])
def test_a_signed_body_with_a_number_json_does_not_have_is_refused(
    receiver: Receiver, http: TestClient, constant: bytes
) -> None:
    for source in sorted(SOURCES):
        body = envelope(source, "evt_ok", b"[" + constant + b"]")

        headers = signed(source, body)

        answer = http.post(f"/webhooks/default/{source}", content=body, headers=headers)

        assert "not JSON" in refused(answer, 400, 401)
    assert receiver.stored() == 0


@pytest.mark.parametrize("version", [2**63, -(2**63) - 1, str(10**30)])
def test_a_standard_version_that_cannot_be_stored_is_400(
    receiver: Receiver, http: TestClient, version: int | str
) -> None:
    record = {"model": "companies", "key": {"sourceId": "co_1"}, "version": version}
    body = json.dumps(record).encode()

    answer = http.post("/webhooks/default/standard", content=body, headers=signed("standard", body))

    assert "64 bits" in refused(answer, 400)
    assert receiver.stored() == 0


# --- the property: anything hostile, on every source ------------------------------------

# Ids no source may be stored under (the key is 1-255 printable ASCII characters).
bad_ids = st.one_of(
    st.sampled_from(["x" * 255 + "\n", "evt_x\n", "\nevt_x", "x" * 256, "", " ", "evt\tx"]),
    st.text(min_size=1, max_size=12).map(lambda text: text + "\x7f"),
    st.text(st.characters(min_codepoint=0x80), min_size=1, max_size=8),
    st.integers(min_value=10**256, max_value=10**300),
    st.none() | st.booleans() | st.lists(st.just(1), max_size=2) | st.floats(),
)
deep_payloads = st.one_of(
    st.integers(65, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([1000, DEEP]).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.just(b"[" * DEEP + b"]" * DEEP),
)
# What json.loads takes and JSON has not: NaN, infinities, half a surrogate pair.
unjson_payloads = st.sampled_from(
    [b"NaN", b"[Infinity]", b"-Infinity", b"1e999999", b'"\\ud800"', b'{"\\udfff": 1}']
)


def _python_reads(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def _header_bytes(value: str) -> bytes:
    return bytes(b for b in value.encode("utf-8", "surrogatepass") if b not in b"\r\n\x00")


@st.composite
def hostile(draw: st.DrawFn, source: str) -> tuple[str, dict[str, Any], bytes]:
    """(path, headers, body) that the receiver must refuse."""
    kinds = ["bad id", "deep", "junk", "broken", "not json", "unsigned", "wrong secret"]
    kind = draw(st.sampled_from(kinds))
    path = f"/webhooks/default/{source}"
    if kind == "bad id":
        if source == "standard":
            event_id = _header_bytes(draw(bad_ids.filter(lambda i: isinstance(i, str))))
            assume(not re.fullmatch(rb"[\x21-\x7e]{1,255}", event_id))  # a header has no "\n"
            body = envelope(source, "evt_ok")
            return path, signed(source, body, event_id.decode("latin-1")), body
        body = envelope(source, draw(bad_ids))
        return path, signed(source, body), body
    if kind == "deep":
        body = envelope(source, "evt_ok", draw(deep_payloads))
        return path, signed(source, body), body
    if kind == "junk":
        body = envelope(source, "evt_ok", draw(unjson_payloads))
        return path, signed(source, body), body
    if kind == "broken":  # bytes spliced in that leave no JSON at all
        body = envelope(source, "evt_ok", draw(st.binary(max_size=40)))
        assume(not _python_reads(body))
        return path, signed(source, body), body
    if kind == "not json":
        body = draw(st.binary(max_size=300) | st.text(max_size=100).map(str.encode))
        return path, signed(source, body), body
    body = draw(st.binary(max_size=300) | st.just(envelope(source, "evt_ok")))
    if kind == "unsigned":
        names = [*SIGNATURE_HEADERS.values(), "webhook-id", "webhook-timestamp", "sm-apikey"]
        headers = draw(
            st.dictionaries(
                st.sampled_from([*names, "content-type", "content-encoding", "x-anything"]),
                st.text(max_size=40).map(_header_bytes),
                max_size=6,
            )
        )
        headers.setdefault("content-type", b"application/json")
        path = draw(st.sampled_from([path, f"/webhooks/default%0A/{source}", f"{path}/x"]))
        return path, headers, body
    # signed with another secret, and maybe some bytes slipped into a header
    headers = signed(source, body, secrets=WRONG)
    name = draw(st.sampled_from(sorted(headers)))
    value = headers[name] if isinstance(headers[name], bytes) else headers[name].encode()
    cut = draw(st.integers(0, len(value)))
    extra = _header_bytes(draw(st.text(max_size=8)))
    headers[name] = value[:cut] + extra + value[cut:]
    return path, headers, body


@pytest.mark.parametrize("source", sorted(SOURCES))
@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_requests_never_get_a_5xx_and_store_nothing(
    receiver: Receiver, http: TestClient, source: str, data: st.DataObject
) -> None:
    path, headers, body = data.draw(hostile(source))

    answer = http.post(path, content=body, headers=headers)

    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.json()["error"]
    assert receiver.stored() == 0
