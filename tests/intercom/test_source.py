"""The intercom source's pure parts: signatures, the notification envelope, the mapping."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from connectors.change import MappingError, RecordRejected
from connectors.intercom import SOURCE
from connectors.intercom.mapping import COMPANY_HINT
from connectors.intercom.verify import sign, signed_headers
from connectors.sources import SOURCES, env_api_bases, env_secrets, source_options
from connectors.webhooks import SignatureError
from state.connections import Tenant
from worker.intake.reconcile import synced_models

SECRET = "intercom-client-secret"
TICKET = {"type": "ticket", "id": "77", "ticket_id": "12",
          "ticket_attributes": {"_default_title_": "Printer", "_default_description_": "It jams"},
          "ticket_state": {"type": "ticket_state", "id": "5", "category": "in_progress"},
          "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": "c1"}]},
          "updated_at": 1767312000}  # fmt: skip


def document(contact: Any = None, companies: Any = None, **ticket: Any) -> bytes:
    contact = {"id": "c1", "email": "Ann@Acme.example"} if contact is None else contact
    companies = [{"id": "x1", "company_id": "acme"}] if companies is None else companies
    return json.dumps({"ticket": {**TICKET, **ticket}, "contact": contact,
                       "companies": companies}).encode()  # fmt: skip


def options(**given: str) -> dict[str, str]:
    return source_options(SOURCE, {f"intercom.{k}": v for k, v in given.items()})


def test_intercom_is_registered_with_its_environment() -> None:
    environ = {"INTERCOM_CLIENT_SECRET": "s", "INTERCOM_ACCESS_TOKEN": "t",
               "INTERCOM_API_BASE": "eu"}  # fmt: skip
    assert SOURCES["intercom"] is SOURCE
    secrets = env_secrets(environ)
    assert (secrets["intercom"], secrets["intercom:access_token"]) == ("s", "t")
    assert env_api_bases(environ)["intercom"] == "eu"


def test_a_signed_notification_verifies_and_its_id_is_the_event_id() -> None:
    body = b'{"type":"notification_event","id":"notif_1","topic":"ticket.created"}'
    assert SOURCE.verify(signed_headers(SECRET, body), body, SECRET, time.time()) == "notif_1"
    upper = {"X-Hub-Signature": "sha1=" + sign(SECRET, body)[5:].upper()}
    assert SOURCE.verify(upper, body, SECRET, time.time()) == "notif_1"


@pytest.mark.parametrize("tamper", ["body", "secret", "scheme", "missing", "no id"])
def test_a_forged_signature_is_refused(tamper: str) -> None:
    body = b'{"id":"notif_1"}' if tamper != "no id" else b'{"topic":"ping"}'
    headers = signed_headers("other" if tamper == "secret" else SECRET, body)
    if tamper == "scheme":
        headers["X-Hub-Signature"] = headers["X-Hub-Signature"].replace("sha1=", "sha256=")
    if tamper == "missing":
        del headers["X-Hub-Signature"]
    sent = b'{"id":"notif_2"}' if tamper == "body" else body
    with pytest.raises(SignatureError):
        SOURCE.verify(headers, sent, SECRET, time.time())


def test_a_ticket_maps_to_one_planhat_ticket() -> None:
    [change] = SOURCE.changes(document(), "notif_1", options())
    assert (change.model, change.key_field, change.key) == ("tickets", "sourceId", "77")
    assert dict(change.fields) == {
        "source": "intercom", "title": "Printer", "description": "It jams",
        "email": "ann@acme.example", "status": "in_progress", COMPANY_HINT: ["acme"],
    }  # fmt: skip
    assert change.version == 1_767_312_000_000_000
    assert change.event_id == "notif_1"


def test_statuses_map_from_the_state_category_by_the_connections_option() -> None:
    chosen = options(status_map="submitted=new,in_progress=open,resolved=closed")
    [change] = SOURCE.changes(document(ticket_state={"category": "resolved"}), "e", chosen)
    assert change.fields["status"] == "closed"
    [before_2_12] = SOURCE.changes(document(ticket_state="submitted"), "e", chosen)
    assert before_2_12.fields["status"] == "new"


@pytest.mark.parametrize(
    ("contact", "says"), [({}, "names no contact"), ({"id": "c1", "email": None}, "has no e-mail")]
)
def test_a_contact_without_an_email_is_a_dead_letter_saying_so(contact: Any, says: str) -> None:
    with pytest.raises(RecordRejected, match=says):
        SOURCE.changes(document(contact=contact), "e", options())


def test_without_companies_the_ticket_carries_no_company_hint() -> None:
    [change] = SOURCE.changes(document(companies=[]), "e", options())
    assert COMPANY_HINT not in change.fields


def test_other_topics_are_kept_and_ignored_and_uncompleted_ticket_topics_are_errors() -> None:
    ping = {"type": "notification_event", "id": "n", "topic": "conversation.user.created",
            "data": {"item": {"type": "conversation", "id": "1"}}}  # fmt: skip
    body = json.dumps(ping).encode()
    assert SOURCE.changes(body, "n", options()) == []
    assert SOURCE.detail({}, None, body) == body  # kept as it came: no call, no token needed
    thin = {**ping, "topic": "ticket.state.updated", "data": {"item": TICKET}}
    with pytest.raises(MappingError, match="completed"):
        SOURCE.changes(json.dumps(thin).encode(), "n", options())


def test_a_deleted_ticket_maps_to_nothing() -> None:
    gone = json.dumps({"ticket": {"id": "77", "deleted": True}}).encode()
    assert SOURCE.changes(gone, "e", options()) == []


@pytest.mark.parametrize("value", ["soon", None, True, "1e9"])
def test_a_ticket_without_a_usable_updated_at_cannot_be_mapped(value: Any) -> None:
    with pytest.raises(MappingError, match="updated_at"):
        SOURCE.changes(document(updated_at=value), "e", options())


def test_a_connection_with_intercom_reconciles_its_tickets() -> None:
    tenant = Tenant(name="default", planhat_base_url="http://127.0.0.1:9", planhat_token="t",
                    secrets={"intercom": "s", "intercom:access_token": "t"})  # fmt: skip
    assert synced_models(tenant) == ["tickets"]


def _ticket_with_last_part(**part: object) -> dict[str, object]:
    last = {"part_type": "ticket_state_updated_by_admin", "created_at": 20, **part}
    first = {"part_type": "ticket_created", "created_at": 10, "author": {"type": "user"}}
    return {"updated_at": 20, "ticket_parts": {"ticket_parts": [first, last]}}


def test_our_own_parts_are_recognised_by_package_code_or_sync_admin() -> None:
    from connectors.intercom.mapping import ours_last

    options = {"app_package_code": "planhat-sync", "admin_id": "7"}
    ours = _ticket_with_last_part(app_package_code="planhat-sync", author={"type": "bot"})
    other_app = _ticket_with_last_part(app_package_code="jira", author={"type": "bot"})
    sync_admin = _ticket_with_last_part(author={"type": "admin", "id": "7"})
    an_admin = _ticket_with_last_part(author={"type": "admin", "id": "8"})
    assert ours_last(ours, options)
    assert ours_last(sync_admin, options)
    assert not ours_last(other_app, options)
    assert not ours_last(an_admin, options)
    assert not ours_last(ours, {"app_package_code": "", "admin_id": ""})  # neither set
