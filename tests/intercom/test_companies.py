"""An Intercom ticket's Planhat company (the shared helpdesk hook with Intercom's hint),
against the Planhat sandbox."""

from __future__ import annotations

from typing import Any

from connectors.intercom.companies import PREPARE
from connectors.intercom.mapping import COMPANY_HINT
from connectors.planhat.client import PlanhatClient
from connectors.source import PrepareContext
from connectors.zendesk.companies import PREPARE as ZENDESK
from connectors.zendesk.mapping import ORG_HINT


def ticket(key: str, email: str, hints: list[str] | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"source": "intercom", "sourceId": key, "email": email}
    if hints is not None:
        fields[COMPANY_HINT] = hints
    return fields


def test_a_company_by_company_id_else_by_domain_else_the_ticket_waits(
    client: PlanhatClient,
) -> None:
    acme = client.create("companies", {"name": "Acme", "externalId": "acme-ext"})["_id"]
    blue = client.create("companies", {"name": "Blue", "domains": ["blue.example"]})["_id"]
    fields = [
        ticket("1", "a@elsewhere.example", ["nope", "acme-ext"]),
        ticket("2", "b@Blue.example"),
        ticket("3", "c@unknown.example", ["x-9"]),
        {"source": "zendesk", "sourceId": "4", "email": "d@blue.example"},
    ]
    records = [{k: v for k, v in f.items() if not k.startswith("~")} for f in fields]
    memo: dict[str, Any] = {}
    context = PrepareContext(connection="default", planhat=client, take_budget=lambda: None,
                             memo=memo)  # fmt: skip
    prepared = PREPARE["tickets"](context, fields, records)
    assert prepared.records[0]["companyId"] == acme
    assert prepared.records[1]["companyId"] == blue
    assert "companyId" not in prepared.records[2]
    assert "companyId" not in prepared.records[3]  # another source's ticket: not ours
    assert list(prepared.waiting) == [2]
    reason = prepared.waiting[2]
    assert "intercom ticket 3" in reason
    assert "'x-9'" in reason
    assert "unknown.example" in reason
    assert prepared.calls == 1
    assert "intercom.companies" not in memo  # dropped: a company may be on its way


def test_the_zendesk_hook_on_the_shared_module_reads_as_before(client: PlanhatClient) -> None:
    acme = client.create("companies", {"name": "Acme", "externalId": "acme-ext"})["_id"]
    fields = [
        {"source": "zendesk", "sourceId": "7", "email": "a@x.example", ORG_HINT: "acme-ext"},
        {"source": "zendesk", "sourceId": "8", "email": "b@y.example", ORG_HINT: "zz"},
    ]
    records = [{k: v for k, v in f.items() if not k.startswith("~")} for f in fields]
    context = PrepareContext(connection="default", planhat=client, take_budget=lambda: None,
                             memo={})  # fmt: skip
    prepared = ZENDESK["tickets"](context, fields, records)
    assert prepared.records[0]["companyId"] == acme
    assert prepared.waiting == {1: (
        "zendesk ticket 8: its organization's external_id 'zz' is no company's externalId and "
        "no Planhat company has the domain y.example; add the domain to its company in Planhat "
        "(or set the organization's external_id to the company's externalId in Zendesk), then "
        "retry this dead letter")}  # fmt: skip
