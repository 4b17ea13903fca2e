"""PlanhatClient against the sandbox where issue 13 checked the sandbox against Planhat:
custom fields keyed by name, unmatched keys, bulk answers, paging caps, rate limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.planhat.bulk import Outcome
from connectors.planhat.client import PlanhatClient
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests.conftest import sandbox_stats

FIELD = {"name": "tier", "parent": "company", "type": "text", "isHidden": False}

# --- custom fields: keyed by name within their parent model ------------------------------


def test_upsert_each_creates_a_custom_field_then_updates_it_by_name(
    client: PlanhatClient,
) -> None:
    [created] = client.upsert_each("customfields", [FIELD], key_field="name")
    [updated] = client.upsert_each("customfields", [{**FIELD, "isHidden": True}], key_field="name")

    assert (created.outcome, updated.outcome) == (Outcome.CREATED, Outcome.UPDATED)
    assert updated.id == created.id
    [field] = list(client.list("customfields"))
    assert (field["_id"], field["isHidden"]) == (created.id, True)


def test_upsert_each_keeps_same_named_fields_of_other_models_apart(
    client: PlanhatClient,
) -> None:
    client.upsert_each("customfields", [FIELD], key_field="name")

    [other] = client.upsert_each("customfields", [{**FIELD, "parent": "enduser"}], key_field="name")

    assert other.outcome is Outcome.CREATED
    assert sorted(f["parent"] for f in client.list("customfields")) == ["company", "enduser"]


def test_upsert_each_uses_no_extid_or_srcid_path_for_custom_fields(
    client: PlanhatClient, sandbox: BackgroundSandbox
) -> None:
    client.upsert_each("customfields", [FIELD], key_field="name")
    client.upsert_each("customfields", [{**FIELD, "type": "number"}], key_field="name")

    routes = sandbox_stats(sandbox)["by_route"]
    assert routes == {
        "GET /customfields": 2,  # one listing per call
        "POST /customfields": 1,
        "PUT /customfields/:id": 1,
    }


def test_upsert_each_reports_a_refused_custom_field_and_goes_on(client: PlanhatClient) -> None:
    incomplete = {"name": "plan", "parent": "company", "type": "text"}  # no isHidden

    results = client.upsert_each("customfields", [incomplete, FIELD], key_field="name")

    assert [r.outcome for r in results] == [Outcome.REJECTED, Outcome.CREATED]
    assert "isHidden" in (results[0].message or "")


# --- paging caps: never ask for more than Planhat returns -------------------------------


def recording(pages: list[list[dict[str, Any]]]) -> tuple[PlanhatClient, list[httpx.Request]]:
    """A client over a fake Planhat answering ``pages`` in turn (then empty pages)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages.pop(0) if pages else [])

    return PlanhatClient("t", transport=httpx.MockTransport(handle)), seen


@pytest.mark.parametrize(("model", "cap"), [("companies", 5000), ("licenses", 2000)])
def test_a_page_size_over_the_cap_is_asked_as_the_cap_and_paged(model: str, cap: int) -> None:
    full = [{"_id": str(i)} for i in range(cap)]
    client, seen = recording([full, full[:7]])

    records = list(client.list(model, page_size=cap * 2))

    assert len(records) == cap + 7  # a capped page is not mistaken for the last one
    assert [(r.url.params["limit"], r.url.params["offset"]) for r in seen] == [
        (str(cap), "0"),
        (str(cap), str(cap)),
    ]


def test_one_page_never_asks_for_more_than_the_cap() -> None:
    client, seen = recording([[]])

    client.list_page("endusers", limit=10_000)

    assert seen[0].url.params["limit"] == "2000"


def test_the_client_pages_a_capped_sandbox_to_the_end(client: PlanhatClient) -> None:
    client.bulk_upsert("companies", [{"sourceId": f"c{i}", "name": f"C{i}"} for i in range(5003)])

    names = {c["name"] for c in client.list("companies", page_size=6000, select=["name"])}

    assert len(names) == 5003


# --- unmatched keys: a new record (https://www.planhat.com/developers/api/bulk-upsert) ---

MISSING_ID = "0" * 24


def test_a_record_whose_id_matches_nothing_is_created(client: PlanhatClient) -> None:
    results = client.bulk_upsert(
        "companies",
        [{"_id": MISSING_ID, "sourceId": "s1", "name": "One"}, {"_id": "f" * 24, "name": "Two"}],
    )

    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.CREATED]
    assert {r.id for r in results} == {c["_id"] for c in client.list("companies")}
    assert client.get("companies", "srcid-s1")["_id"] == results[0].id != MISSING_ID


def test_a_record_whose_keys_match_nothing_is_created_not_rejected(client: PlanhatClient) -> None:
    client.create("companies", {"name": "Acme", "externalId": "acme"})
    record = {"sourceId": "l-new", "externalId": "nowhere", "companyId": "extid-acme"}

    [result] = client.bulk_upsert(
        "licenses", [{**record, "_currency": "USD", "fromDate": "2026-01-01", "mrr": 5}]
    )

    assert result.outcome is Outcome.CREATED
    assert client.get("licenses", "srcid-l-new")["_id"] == result.id
