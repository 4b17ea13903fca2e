"""Chargebee events through the receiver and the embedded engine into the Planhat sandbox:
every fixture, out of order and twice over, ends as the story's newest state."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from connectors.chargebee.verify import basic_auth
from connectors.planhat.client import PlanhatClient
from state.db import session_scope
from state.tables import InboxEvent
from tests.chargebee.test_chargebee import EVENT_FILES
from tests.test_dev_flow import Embedded

AUTHORIZATION = basic_auth("hook-user", "hook-pass")
URL = "/webhooks/default/chargebee"
CUSTOMER = "16CRibSAnkR8R2Nq"


class ChargebeeEmbedded(Embedded):
    """``Embedded`` whose ``default`` tenant has Chargebee's webhook credentials."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, secrets={"chargebee": "hook-user:hook-pass"})

    def post(self, body: bytes, authorization: str | None = AUTHORIZATION) -> int:
        headers = {"content-type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        status: int = self.http.post(URL, content=body, headers=headers).status_code
        return status

    def inbox(self) -> list[tuple[str, str, str]]:
        with session_scope(self.runtime.engine) as session:
            rows = session.exec(select(InboxEvent)).all()
            return [(row.source, row.event_id, row.status) for row in rows]

    def planhat(self, model: str) -> list[dict[str, Any]]:
        with PlanhatClient("check", base_url=self.planhat_a.url) as planhat:
            return list(planhat.list(model))


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[ChargebeeEmbedded]:
    system = ChargebeeEmbedded(tmp_path)
    yield system
    system.close()


def occurred_at(path: Path) -> int:
    at: int = json.loads(path.read_bytes())["occurred_at"]
    return at


def delivery(order: str) -> list[Path]:
    story = sorted(EVENT_FILES, key=occurred_at)
    if order == "newest first":
        return story[::-1]
    shuffled = list(EVENT_FILES)
    random.Random(7).shuffle(shuffled)
    return shuffled


@pytest.mark.parametrize("order", ["shuffled", "newest first"])
def test_every_event_out_of_order_and_redelivered_ends_in_the_newest_state(
    embedded: ChargebeeEmbedded, order: str
) -> None:
    # given the story's 15 events, never in the order they happened
    files = delivery(order)
    assert len(files) == 15
    assert files != sorted(EVENT_FILES, key=occurred_at)

    # when each is delivered, then all are delivered again
    assert [embedded.post(path.read_bytes()) for path in files] == [202] * 15
    assert [embedded.post(path.read_bytes()) for path in files] == [200] * 15
    embedded.drain()

    # then Planhat holds one company and the newest state of every record
    [company] = embedded.planhat("companies")
    assert (company["externalId"], company["name"]) == (CUSTOMER, "Acme Analytics Ltd")
    [enduser] = embedded.planhat("endusers")
    assert (enduser["sourceId"], enduser["email"], enduser["companyId"]) == (
        f"chargebee-{CUSTOMER}",
        "jane.doe@acme-analytics.example",
        company["_id"],
    )
    licenses = {
        license_["sourceId"]: (
            license_["companyId"], license_["product"], license_["mrr"], license_["status"],
            license_["renewalStatus"], license_.get("toDate"), license_["renewalDate"],
            license_["autoRenews"],
        )
        for license_ in embedded.planhat("licenses")
    }  # fmt: skip
    assert licenses == {
        "chargebee-16CRibSAnkR9TeX3-growth-USD-Monthly": (
            company["_id"], "growth-USD-Monthly", 392.0, "active", "ongoing", None,
            "2024-09-01", True),
        "chargebee-16CRibSAnkR9TeX3-priority-support-USD-Monthly": (
            company["_id"], "priority-support-USD-Monthly", 99.0, "active", "ongoing", None,
            "2024-09-01", True),
    }  # fmt: skip
    invoices = {
        invoice["extId"]: (
            invoice["cId"], invoice["cName"], invoice["status"], invoice["amountTotal"],
            invoice["invoiceDate"], invoice["paidDate"],
        )
        for invoice in embedded.planhat("invoices")
    }  # fmt: skip
    name = company["name"]
    assert invoices == {
        "1001": (company["_id"], name, "paid", 594.0, 19797, 19797),
        # invoice_updated (paid) is newer than payment_failed (overdue)
        "1002": (company["_id"], name, "paid", 491.0, 19828, 19831),
        "1003": (company["_id"], name, "paid", 491.0, 19889, 19889),
        "1004": (company["_id"], name, "paid", 491.0, 19936, 19936),
    }
    [sale] = embedded.planhat("sales")
    assert (sale["sourceId"], sale["companyId"], sale["value"], sale["salesDate"]) == (
        "chargebee-sale-li_16CRibSAnkRE1001c",
        company["_id"],
        250.0,
        "2024-03-15",
    )
    [churn] = embedded.planhat("churn")
    assert (churn["sourceId"], churn["companyId"], churn["value"], churn["reasons"]) == (
        "chargebee-churn-16CRibSAnkR9TeX3",
        company["_id"],
        491.0,
        ["Budget constraints"],
    )
    # and the inbox holds each event once, every one of them applied
    assert sorted(embedded.inbox()) == sorted(
        ("chargebee", json.loads(path.read_bytes())["id"], "done") for path in files
    )


@pytest.mark.parametrize(
    "authorization",
    [basic_auth("hook-user", "wrong-pass"), None, "Basic !!!", "Basic bm90LWEtdXNlcg=="],
    ids=["wrong password", "missing", "garbage", "no colon"],
)
def test_a_chargebee_event_without_the_right_credentials_is_refused_and_not_stored(
    embedded: ChargebeeEmbedded, authorization: str | None
) -> None:
    body = (EVENT_FILES[0].parent / "customer_created.json").read_bytes()

    assert embedded.post(body, authorization) == 401

    embedded.drain()
    assert embedded.inbox() == []
    assert embedded.planhat("companies") == []


def test_an_event_type_not_mapped_is_kept_and_marked_ignored(
    embedded: ChargebeeEmbedded,
) -> None:
    event = json.loads((EVENT_FILES[0].parent / "customer_changed.json").read_bytes())
    event |= {"id": "ev_card_added", "event_type": "card_added"}

    assert embedded.post(json.dumps(event).encode()) == 202

    embedded.drain()
    assert embedded.inbox() == [("chargebee", "ev_card_added", "ignored")]
    assert embedded.planhat("companies") == []
