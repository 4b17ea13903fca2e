"""Chargebee's objects, read for a backfill: wrapped as the events their webhooks carry, so
the one mapping makes the same changes of them; paged by ``next_offset``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.chargebee import SOURCE
from connectors.chargebee.backfill import as_event, fetch_page
from connectors.chargebee.mapping import changes
from connectors.chargebee.poll import chargebee_client

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chargebee"


def webhook(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return event


def mapped(body: bytes, event_id: str) -> list[tuple[str, str, dict[str, Any], int]]:
    return [(c.model, c.key, dict(c.fields), c.version) for c in changes(body, event_id, {})]


@pytest.mark.parametrize(
    ("fixture", "resource", "event_type"),
    [
        ("customer_changed", "customer", "customer_changed"),
        ("subscription_created", "subscription", "subscription_changed"),
        ("invoice_generated", "invoice", "invoice_updated"),
    ],
)
def test_an_object_read_maps_as_its_webhook_event_does(
    fixture: str, resource: str, event_type: str
) -> None:
    delivered = webhook(fixture)
    entry = delivered["content"]  # a list entry holds the same resources as the event
    version = entry[resource]["resource_version"]

    event_id, body = as_event(entry, resource, event_type, read_at=1_800_000_000)

    assert event_id == f"backfill:{resource}:{entry[resource]['id']}:{version}"
    assert mapped(body, event_id) == mapped(json.dumps(delivered).encode(), delivered["id"])
    assert mapped(body, event_id)  # and that is something


def test_a_site_s_customers_subscriptions_and_invoices_are_read_customers_first() -> None:
    lists = SOURCE.object_lists({"api_key": "cb_key", "site": "acme-test"}, {}, None)

    read = [(objects.name, str(client.base_url)) for objects, client in lists]

    assert read == [
        ("customers", "https://acme-test.chargebee.com"),
        ("subscriptions", "https://acme-test.chargebee.com"),
        ("invoices", "https://acme-test.chargebee.com"),
    ]
    assert list(SOURCE.object_lists({"api_key": "cb_key"}, {}, None)) == []  # no site


def test_objects_are_paged_by_next_offset_from_since() -> None:
    asked: list[dict[str, str]] = []
    customer = webhook("customer_changed")["content"]["customer"]
    offset = '["1709629200000","c1"]'  # opaque: given back as it came

    def chargebee(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"cb_key:").decode()
        asked.append({"path": request.url.path, **request.url.params})
        page: dict[str, Any] = {"list": [{"customer": customer | {"id": f"c{len(asked)}"}}]}
        if len(asked) == 1:
            page["next_offset"] = offset
        return httpx.Response(200, json=page)

    client = chargebee_client("cb_key", "https://acme-test.chargebee.com",
                              transport=httpx.MockTransport(chargebee))  # fmt: skip
    with client:
        first = fetch_page("customers", client, None, 1_700_000_000)
        second = fetch_page("customers", client, first.next, 1_700_000_000)

    assert asked == [
        {"path": "/api/v2/customers", "limit": "100", "created_at[after]": "1699999999"},
        {"path": "/api/v2/customers", "limit": "100", "created_at[after]": "1699999999",
         "offset": offset},
    ]  # fmt: skip
    assert (first.next, second.next) == (offset, None)
    assert [event_id.split(":")[2] for event_id, _ in first.events + second.events] == [
        "c1",
        "c2",
    ]
