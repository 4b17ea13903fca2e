"""The sandbox where issue 13 checked it against Planhat's own pages: custom fields, time
entries, unmatched keys, bulk answers, paging caps, rate limits, lean companies, profiles.

Each test names its source (or says the behaviour is assumed), as docs/planhat-fidelity.md
does.
"""

from __future__ import annotations

import httpx
import pytest

from tests.planhat.sandbox_http import (
    MISSING_ID,
    company,
    create,
    listing,
)

FIELD = {"name": "tier", "parent": "company", "type": "text", "isHidden": False}

# --- custom fields (https://www.planhat.com/developers/api/custom-field) -----------------


def test_a_custom_field_needs_is_hidden(api: httpx.Client) -> None:
    response = api.post("/customfields", json={k: v for k, v in FIELD.items() if k != "isHidden"})

    assert response.status_code == 400
    assert "isHidden" in response.text
    assert listing(api, "customfields") == []


def test_a_custom_field_is_found_by_id_only_not_by_extid_or_srcid(api: httpx.Client) -> None:
    field = create(api, "customfields", {**FIELD, "externalId": "x", "sourceId": "s"})

    assert api.get(f"/customfields/{field['_id']}").status_code == 200
    assert api.get("/customfields/extid-x").status_code == 404
    assert api.get("/customfields/srcid-s").status_code == 404
    assert api.put("/customfields/srcid-s", json={"isHidden": True}).status_code == 404


def test_a_custom_field_name_is_unique_within_its_parent_model(api: httpx.Client) -> None:
    # Inference: records' ``custom`` objects are keyed by field name (the 400 is assumed).
    create(api, "customfields", FIELD)

    again = api.post("/customfields", json=FIELD)
    elsewhere = api.post("/customfields", json={**FIELD, "parent": "enduser"})

    assert again.status_code == 400
    assert "tier" in again.text
    assert elsewhere.status_code == 200
    assert len(listing(api, "customfields")) == 2


def test_two_custom_fields_may_share_a_source_id_as_it_is_no_key_there(api: httpx.Client) -> None:
    create(api, "customfields", {**FIELD, "sourceId": "s"})

    response = api.post("/customfields", json={**FIELD, "name": "plan", "sourceId": "s"})

    assert response.status_code == 200


# --- time entries (https://www.planhat.com/developers/api/time-entry) --------------------


def test_a_time_entry_links_to_a_company_through_company_id(api: httpx.Client) -> None:
    acme = company(api, "acme")
    company(api, "other")
    entry = {"date": "2026-03-01", "hours": 1.5, "companyId": "extid-acme"}

    created = create(api, "timeentries", entry)

    assert created["companyId"] == acme["_id"]
    assert [e["_id"] for e in listing(api, "timeentries", companyId="extid-acme")] == [
        created["_id"]
    ]
    assert listing(api, "timeentries", companyId="extid-other") == []


def test_a_time_entry_without_a_company_is_still_accepted(api: httpx.Client) -> None:
    # companyId is a link, not a required field on Planhat's time-entry page.
    assert api.post("/timeentries", json={"date": "2026-03-01", "hours": 2}).status_code == 200


def test_a_time_entry_naming_a_missing_company_is_refused(api: httpx.Client) -> None:
    entry = {"date": "2026-03-01", "hours": 2, "companyId": MISSING_ID}

    assert api.post("/timeentries", json=entry).status_code == 400


# --- paging caps (robocorp/robocorp-planhat src/planhat/client.py; botpress) ------------


@pytest.mark.parametrize(("model", "cap"), [("companies", 5000), ("projects", 2000)])
def test_a_page_holds_at_most_the_models_cap(api: httpx.Client, model: str, cap: int) -> None:
    company(api, "acme")
    items = [{"name": f"R{i}", "companyId": "extid-acme"} for i in range(cap + 1)]
    for start in range(0, len(items), 5000):
        assert api.put(f"/{model}", json=items[start : start + 5000]).status_code == 200

    page = listing(api, model, limit=cap + 1000)
    rest = listing(api, model, limit=cap + 1000, offset=cap)

    assert len(page) == cap
    assert len(rest) == (2 if model == "companies" else 1)
