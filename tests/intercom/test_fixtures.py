"""Real payload shapes (tests/fixtures/intercom/README.md), each mapped to the exact
Planhat ticket it must become, completed as ``detail`` completes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.intercom import SOURCE
from connectors.intercom.mapping import COMPANY_HINT
from connectors.intercom.verify import signed_headers
from connectors.sources import source_options

FIXTURES = Path(__file__).parent.parent / "fixtures" / "intercom"
ZULIP_TITLE = "Unclear user message 'erf' with pending email response"
ZULIP_DESCRIPTION = (
    "User sent an unclear message 'erf' and was informed that replies will be sent here "
    "and to admin@example.com; awaiting further clarification or response."
)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def completed(ticket: Any) -> bytes:
    """A ticket with the documented contact and its companies, as ``api.complete`` builds it."""
    contact = load("docs_contact.json")
    companies = [{"id": c["id"], "company_id": c["company_id"], "name": c["name"]}
                 for c in load("docs_contact_companies.json")["data"]]  # fmt: skip
    return json.dumps({"ticket": ticket, "contact": {"id": contact["id"],
                       "email": contact["email"]}, "companies": companies}).encode()  # fmt: skip


EXPECTED = {
    "ticket_created.json": ("215472629311235", 1_768_114_250_000_000, "submitted", ZULIP_TITLE),
    "ticket_state_updated.json": ("215472629311235", 1_768_114_250_000_000, "submitted",
                                  ZULIP_TITLE),
    "ticket_closed.json": ("215472629311235", 1_768_117_266_000_000, "resolved", ZULIP_TITLE),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_notification_verifies_and_maps_to_its_planhat_ticket(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    notification = json.loads(raw)
    secret = "zulip-fixture-secret"
    assert SOURCE.verify(signed_headers(secret, raw), raw, secret, 0.0) == notification["id"]
    key, version, status, title = EXPECTED[name]
    [change] = SOURCE.changes(
        completed(notification["data"]["item"]), notification["id"], source_options(SOURCE, {})
    )
    assert (change.model, change.key_field, change.key, change.version) == (
        "tickets", "sourceId", key, version)  # fmt: skip
    assert dict(change.fields) == {
        "source": "intercom", "title": title, "description": ZULIP_DESCRIPTION,
        "email": "joe@bloggs.example", "status": status, COMPANY_HINT: ["6"],
    }  # fmt: skip


def test_the_documented_ticket_maps_to_its_planhat_ticket() -> None:
    options = source_options(SOURCE, {"intercom.status_map": "waiting_on_customer=pending"})
    [change] = SOURCE.changes(completed(load("docs_ticket.json")), "ticket-1295@1663597260",
                              options)  # fmt: skip
    assert (change.key, change.version) == ("1295", 1_663_597_260_000_000)
    assert dict(change.fields) == {
        "source": "intercom", "title": "Found a bug", "description": "The button's not working",
        "email": "joe@bloggs.example", "status": "pending", COMPANY_HINT: ["6"],
    }  # fmt: skip


def test_a_topic_not_mirrored_is_ignored() -> None:
    raw = (FIXTURES / "ping.json").read_bytes()
    assert SOURCE.changes(raw, "notif_7a0b4b1e-ping", source_options(SOURCE, {})) == []
