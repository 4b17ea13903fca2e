"""The zendesk source's pure parts: signatures, normalising events, the mapping."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.change import RecordRejected, version_number
from connectors.sources import SOURCES, source_options
from connectors.webhooks import SignatureError
from connectors.zendesk import SOURCE
from connectors.zendesk.mapping import ORG_HINT, normalise, ticket_id
from connectors.zendesk.sandbox.hooks import detail
from connectors.zendesk.verify import signed_headers

SECRET = "zendesk-webhook-signing-secret"
TICKET = {"id": 7, "url": "https://acme.zendesk.com/api/v2/tickets/7.json", "subject": "Printer",
          "description": "It jams", "status": "pending", "priority": "high", "tags": ["b", "a"],
          "requester_id": 5, "organization_id": 9, "created_at": "2026-01-01T00:00:00Z",
          "updated_at": "2026-01-02T00:00:00Z", "via": {"channel": "web"}}  # fmt: skip


def document(**ticket: Any) -> bytes:
    users = [{"id": 5, "email": "Ann@Acme.example"}]
    orgs = [{"id": 9, "external_id": "acme"}]
    return json.dumps({"ticket": {**TICKET, **ticket}, "users": users,
                       "organizations": orgs}).encode()  # fmt: skip


def options(**given: str) -> dict[str, str]:
    return source_options(SOURCE, {f"zendesk.{k}": v for k, v in given.items()})


def test_zendesk_is_registered() -> None:
    assert SOURCES["zendesk"] is SOURCE


def test_a_signed_event_verifies_and_its_id_is_the_envelope_id() -> None:
    body = b'{"id":"01J-event","type":"zen:event-type:ticket.created"}'
    headers = signed_headers(SECRET, body, datetime.now(UTC))
    assert SOURCE.verify(headers, body, SECRET, time.time()) == "01J-event"


@pytest.mark.parametrize("tamper", ["body", "secret", "stale", "future"])
def test_a_forged_or_stale_signature_is_refused(tamper: str) -> None:
    body = b'{"id":"e1"}'
    when = datetime.now(UTC)
    if tamper == "stale":
        when -= timedelta(minutes=6)
    if tamper == "future":
        when += timedelta(minutes=6)
    headers = signed_headers("other" if tamper == "secret" else SECRET, body, when)
    sent = b'{"id":"e2"}' if tamper == "body" else body
    with pytest.raises(SignatureError):
        SOURCE.verify(headers, sent, SECRET, time.time())


def test_an_events_detail_is_read_as_rest_spells_it() -> None:
    spelled = detail({**TICKET, "assignee_id": None})
    assert spelled["status"] == "PENDING"
    normal = normalise(spelled)
    assert normal["id"] == 7
    assert normal["status"] == "pending"
    assert normal["priority"] == "high"
    assert normal["requester_id"] == 5
    assert normal["assignee_id"] is None
    assert ticket_id({"detail": spelled}) == 7
    assert ticket_id({"subject": "zen:ticket:12"}) == 12


def test_a_ticket_maps_to_one_planhat_ticket() -> None:
    [change] = SOURCE.changes(document(), "e1", options())
    assert (change.model, change.key_field, change.key) == ("tickets", "sourceId", "7")
    assert dict(change.fields) == {
        "source": "zendesk", "title": "Printer", "description": "It jams",
        "email": "ann@acme.example", "status": "pending", "severity": "high",
        "tags": ["a", "b"], "url": "https://acme.zendesk.com/agent/tickets/7",
        ORG_HINT: "acme",
    }  # fmt: skip
    assert change.version == 1_767_312_000_000_000


def test_statuses_map_by_the_connections_option() -> None:
    [change] = SOURCE.changes(
        document(status="solved"), "e1", options(status_map="solved=resolved")
    )
    assert change.fields["status"] == "resolved"


def test_a_requester_without_an_email_is_a_dead_letter_saying_so() -> None:
    body = json.loads(document())
    body["users"] = [{"id": 5, "email": None}]
    with pytest.raises(RecordRejected, match="requester has no e-mail"):
        SOURCE.changes(json.dumps(body).encode(), "e1", options())


def test_a_deleted_ticket_maps_to_a_deletion_of_its_planhat_ticket() -> None:
    [change] = SOURCE.changes(document(status="deleted"), "e1", options())
    assert (change.action, change.key_field, change.key) == ("deleted", "sourceId", "7")
    assert change.fields == {}
    assert change.version == version_number("2026-01-02T00:00:00Z")


def test_a_deleted_export_item_without_updated_at_is_versioned_by_its_generated_time() -> None:
    body = json.dumps({"ticket": {"id": 7, "status": "deleted",
                                  "generated_timestamp": 1767312000}}).encode()  # fmt: skip
    [change] = SOURCE.changes(body, "e1", options())
    assert change.version == version_number("2026-01-02T00:00:00Z")
