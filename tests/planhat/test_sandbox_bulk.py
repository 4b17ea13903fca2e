"""The sandbox's bulk upsert: Planhat's matching order, answer shape and statuses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.planhat.sandbox_http import (
    BULK_ANSWER_KEYS,
    MISSING_ID,
    Record,
    company,
    create,
    license_,
    listing,
)

# --- bulk upsert -------------------------------------------------------------------------


def test_bulk_upsert_creates_then_updates_with_planhats_answer(api: httpx.Client) -> None:
    first = api.put("/companies", json=[{"sourceId": "s1", "name": "A"}])

    assert first.status_code == 200
    answer = first.json()
    assert set(answer) == BULK_ANSWER_KEYS
    assert (answer["created"], answer["updated"], answer["nonupdates"]) == (1, 0, 0)
    [record_id] = answer["upsertedIds"]
    assert answer["insertsKeys"] == [{"sourceId": "s1", "_id": record_id}]

    second = api.put("/companies", json=[{"sourceId": "s1", "name": "B"}])

    answer = second.json()
    assert second.status_code == 200
    assert set(answer) == BULK_ANSWER_KEYS
    assert (answer["created"], answer["updated"], answer["nonupdates"]) == (0, 1, 0)
    assert answer["modified"] == [record_id]
    assert answer["updatesKeys"] == [{"sourceId": "s1", "_id": record_id}]
    assert api.get(f"/companies/{record_id}").json()["name"] == "B"


def test_an_unchanged_re_upsert_counts_as_a_nonupdate(api: httpx.Client) -> None:
    company(api, "acme")
    record = license_("l1", "extid-acme", custom={"seats": 3})
    record_id = api.put("/licenses", json=[record]).json()["upsertedIds"][0]

    response = api.put("/licenses", json=[record])

    answer = response.json()
    assert response.status_code == 200
    assert (answer["created"], answer["updated"], answer["nonupdates"]) == (0, 0, 1)
    assert answer["modified"] == []
    assert [k["_id"] for k in answer["updatesKeys"]] == [record_id]


def test_stats_count_the_records_bulk_upserts_changed_and_those_they_wrote_unchanged(
    api: httpx.Client,
) -> None:
    # given a company created, then changed, then written again as it is
    for name in ("A", "B", "B"):
        api.put("/companies", json=[{"sourceId": "s1", "name": name}]).raise_for_status()

    stats = api.get("/_sandbox/stats").json()

    assert stats["record_writes"] == {"companies": 2}
    assert stats["unchanged_writes"] == {"companies": 1}


def test_bulk_upsert_matches_id_before_source_id(api: httpx.Client) -> None:
    a = company(api, "a")

    answer = api.put(
        "/companies", json=[{"_id": a["_id"], "sourceId": "src-new", "name": "Renamed"}]
    ).json()

    assert (answer["created"], answer["updated"]) == (0, 1)
    assert api.get("/companies/srcid-src-new").json()["_id"] == a["_id"]
    assert len(listing(api, "companies")) == 1


def test_bulk_upsert_matches_source_id_before_external_id(api: httpx.Client) -> None:
    # B is the first project with externalId "p", so a match on externalId would find B.
    company(api, "a")
    company(api, "b")
    b = create(api, "projects", {"name": "B", "companyId": "extid-b", "externalId": "p"})
    a = create(
        api, "projects", {"name": "A", "companyId": "extid-a", "externalId": "p", "sourceId": "sa"}
    )

    answer = api.put("/projects", json=[{"sourceId": "sa", "externalId": "p", "name": "New"}])

    assert answer.json()["modified"] == [a["_id"]]
    assert api.get(f"/projects/{a['_id']}").json()["name"] == "New"
    assert api.get(f"/projects/{b['_id']}").json()["name"] == "B"


def test_bulk_upsert_tries_source_id_before_another_records_external_id(
    api: httpx.Client,
) -> None:
    # The item's sourceId names A and its externalId names B. It is matched to A, whose
    # update then collides with B's externalId (unique per model for companies), so the
    # refusal names externalId; a match on B would have collided on sourceId instead.
    a = company(api, "a")
    b = company(api, "b")

    response = api.put("/companies", json=[{"sourceId": "src-a", "externalId": "b", "name": "X"}])

    answer = response.json()
    assert response.status_code == 400  # nothing written: not a partial success
    assert (answer["created"], answer["createdErrors"]) == (0, [])
    [error] = answer["updatedErrors"]
    assert "externalId" in error["message"]
    assert "sourceId" not in error["message"]
    assert api.get(f"/companies/{a['_id']}").json()["name"] == "Company a"
    assert api.get(f"/companies/{b['_id']}").json()["name"] == "Company b"


def test_bulk_upsert_matches_an_external_id_within_the_named_company(api: httpx.Client) -> None:
    company(api, "a")
    company(api, "b")
    a = create(api, "projects", {"name": "A", "companyId": "extid-a", "externalId": "p"})
    b = create(api, "projects", {"name": "B", "companyId": "extid-b", "externalId": "p"})

    answer = api.put(
        "/projects", json=[{"externalId": "p", "companyId": "extid-b", "name": "New"}]
    ).json()

    assert answer["modified"] == [b["_id"]]
    assert api.get(f"/projects/{a['_id']}").json()["name"] == "A"


def test_bulk_upsert_answers_206_with_an_error_entry_for_a_failing_item(
    api: httpx.Client,
) -> None:
    items = [{"sourceId": "ok", "name": "Fine"}, {"sourceId": "bad", "externalId": "e-bad"}]

    response = api.put("/companies", json=items)

    assert response.status_code == 206
    answer = response.json()
    assert set(answer) == BULK_ANSWER_KEYS
    assert answer["created"] == 1
    [error] = answer["createdErrors"]
    assert (error["sourceId"], error["externalId"]) == ("bad", "e-bad")
    assert "name" in error["message"]
    assert [c["sourceId"] for c in listing(api, "companies")] == ["ok"]


def test_bulk_upsert_with_an_id_that_matches_nothing_creates_a_new_record(
    api: httpx.Client,
) -> None:
    # "If the provided key doesn't match any existing record, a new record will be created"
    # (planhat.com/developers/api/bulk-upsert); that it gets a new _id is assumed.
    response = api.put("/companies", json=[{"_id": MISSING_ID, "name": "Ghost"}])

    assert response.status_code == 200
    answer = response.json()
    assert (answer["created"], answer["updatedErrors"]) == (1, [])
    [record] = listing(api, "companies")
    assert record["name"] == "Ghost"
    assert record["_id"] != MISSING_ID
    assert answer["insertsKeys"] == [{"_id": record["_id"]}]


def test_an_unmatched_id_passes_to_the_source_id(api: httpx.Client) -> None:
    a = company(api, "a")

    answer = api.put(
        "/companies", json=[{"_id": MISSING_ID, "sourceId": "src-a", "name": "Renamed"}]
    ).json()

    assert (answer["created"], answer["updated"]) == (0, 1)
    assert [c["name"] for c in listing(api, "companies")] == ["Renamed"]
    assert answer["modified"] == [a["_id"]]


@pytest.mark.parametrize("body", [{"name": "A"}, "A", 5, None])
def test_bulk_upsert_refuses_a_body_that_is_not_an_array(api: httpx.Client, body: Any) -> None:
    response = api.put("/companies", json=body)

    assert response.status_code == 400
    assert listing(api, "companies") == []


def test_bulk_upsert_takes_5000_items_but_refuses_5001(api: httpx.Client) -> None:
    items = [{"sourceId": f"s{i}", "name": f"C{i}"} for i in range(5001)]

    refused = api.put("/companies", json=items)
    accepted = api.put("/companies", json=items[:5000])

    assert refused.status_code == 400
    assert "5000" in refused.text
    assert accepted.status_code == 200
    assert accepted.json()["created"] == 5000


@pytest.mark.parametrize(
    "items",
    [
        [{"sourceId": "s1", "name": "A"}, {"sourceId": "s1", "name": "B"}],
        [{"externalId": "e1", "name": "A"}, {"externalId": "e1", "name": "B"}],
        [{"_id": "c" * 24, "name": "A"}, {"_id": "c" * 24, "name": "B"}],
    ],
)
def test_bulk_upsert_refuses_a_key_named_twice_in_the_payload(
    api: httpx.Client, items: list[Record]
) -> None:
    response = api.put("/companies", json=[{"name": "Other"}, *items])

    assert response.status_code == 400
    assert "duplicate" in response.text
    assert listing(api, "companies") == []


def test_one_external_id_under_two_companies_is_not_a_duplicate(api: httpx.Client) -> None:
    company(api, "a")
    company(api, "b")
    items = [
        {"externalId": "p", "companyId": "extid-a", "name": "A"},
        {"externalId": "p", "companyId": "extid-b", "name": "B"},
    ]

    response = api.put("/projects", json=items)

    assert response.status_code == 200
    assert response.json()["created"] == 2
