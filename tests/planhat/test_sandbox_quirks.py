"""The sandbox's Planhat quirks and its list endpoint."""

from __future__ import annotations

import httpx
import pytest

from tests.planhat.sandbox_http import (
    Record,
    company_without_source_id,
    create,
    listing,
)

# --- quirks ------------------------------------------------------------------------------


def test_tickets_are_bulk_only(api: httpx.Client) -> None:
    # docs.planhat.com (Ticket: BulkUpsert, Get list, Delete only); planhat/docs
    # source/includes/_tickets.md
    acme = company_without_source_id(api, "acme")
    ticket = {"sourceId": "t1", "email": "ada@acme.com", "companyId": "extid-acme", "title": "T"}

    assert api.post("/tickets", json=ticket).status_code == 404
    upserted = api.put("/tickets", json=[ticket])
    [ticket_id] = upserted.json()["upsertedIds"]
    assert upserted.status_code == 200
    assert api.get(f"/tickets/{ticket_id}").status_code == 404
    assert api.put(f"/tickets/{ticket_id}", json={"title": "U"}).status_code == 404
    [listed] = listing(api, "tickets")
    assert (listed["_id"], listed["companyId"]) == (ticket_id, acme["_id"])
    deleted = api.delete(f"/tickets/{ticket_id}")
    assert deleted.json() == {"n": 1, "ok": 1, "deletedCount": 1}
    assert listing(api, "tickets") == []


def test_a_ticket_without_email_is_silently_dropped(api: httpx.Client) -> None:
    # planhat/docs source/includes/_tickets.md: "Items without email will be silently dropped"
    company_without_source_id(api, "acme")

    response = api.put("/tickets", json=[{"sourceId": "t1", "companyId": "extid-acme"}])

    assert response.status_code == 200
    answer = response.json()
    assert (answer["created"], answer["updated"], answer["nonupdates"]) == (0, 0, 0)
    assert answer["createdErrors"] == answer["updatedErrors"] == []
    assert listing(api, "tickets") == []


def test_custom_fields_have_no_bulk_upsert(api: httpx.Client) -> None:
    field = {"name": "tier", "parent": "company", "type": "text", "isHidden": False}

    assert api.put("/customfields", json=[field]).status_code == 404
    assert listing(api, "customfields") == []
    assert api.post("/customfields", json=field).status_code == 200


@pytest.mark.parametrize("write", ["create", "upsert"])
def test_an_enduser_without_company_is_placed_by_its_email_domain(
    api: httpx.Client, write: str
) -> None:
    # planhat.com/developers/api/enduser: without companyId, "Planhat will auto-assign the
    # new end user to the company using domain matching"
    company_without_source_id(api, "other", domains=["other.com"])
    acme = company_without_source_id(api, "acme", domains=["acme.com"])
    enduser = {"sourceId": "u1", "email": "ada@Acme.com"}

    if write == "create":
        create(api, "endusers", enduser)
    else:
        assert api.put("/endusers", json=[enduser]).json()["created"] == 1

    assert api.get("/endusers/srcid-u1").json()["companyId"] == acme["_id"]


def test_an_enduser_no_company_can_take_is_silently_ignored(api: httpx.Client) -> None:
    # help.planhat.com/en/articles/9586991: "it will not be saved and instead the request is
    # ignored"
    company_without_source_id(api, "acme", domains=["acme.com"])

    response = api.put("/endusers", json=[{"sourceId": "u1", "email": "ada@elsewhere.com"}])

    assert response.status_code == 200
    answer = response.json()
    assert (answer["created"], answer["updated"], answer["nonupdates"]) == (0, 0, 0)
    assert answer["createdErrors"] == answer["updatedErrors"] == []
    assert listing(api, "endusers") == []


def test_a_partial_update_of_an_enduser_keeps_its_company(api: httpx.Client) -> None:
    # The domain is a fallback for placing a new enduser; an update naming no company
    # must not move one that is already placed.
    home = company_without_source_id(api, "home")
    company_without_source_id(api, "acme", domains=["acme.com"])
    enduser = create(api, "endusers", {"email": "ada@home.com", "companyId": "extid-home"})

    response = api.put(f"/endusers/{enduser['_id']}", json={"email": "ada@acme.com"})

    assert response.status_code == 200
    assert response.json()["email"] == "ada@acme.com"
    assert response.json()["companyId"] == home["_id"]


# --- lists -------------------------------------------------------------------------------


def test_a_list_is_a_bare_array_of_100_records_by_default(api: httpx.Client) -> None:
    items = [{"sourceId": f"s{i:03}", "name": f"C{i:03}"} for i in range(150)]
    assert api.put("/companies", json=items).status_code == 200

    response = api.get("/companies")

    records = response.json()
    assert isinstance(records, list)
    assert [r["sourceId"] for r in records] == [f"s{i:03}" for i in range(100)]


def test_a_list_pages_with_limit_and_offset(api: httpx.Client) -> None:
    api.put("/companies", json=[{"name": f"C{i}"} for i in range(5)])

    def names(offset: int) -> list[str]:
        return [c["name"] for c in listing(api, "companies", limit=2, offset=offset)]

    assert names(0) == ["C0", "C1"]
    assert names(2) == ["C2", "C3"]
    assert names(4) == ["C4"]
    assert names(5) == []


def test_a_list_sorts_by_a_field_up_or_down(api: httpx.Client) -> None:
    api.put("/companies", json=[{"name": n} for n in ("b", "c", "a")])

    assert [c["name"] for c in listing(api, "companies", sort="name")] == ["a", "b", "c"]
    assert [c["name"] for c in listing(api, "companies", sort="-name")] == ["c", "b", "a"]


def test_a_list_with_select_returns_only_id_and_the_selected_fields(api: httpx.Client) -> None:
    company_without_source_id(api, "acme", phone="1")

    [record] = listing(api, "companies", select="name")

    assert set(record) == {"_id", "name"}


def test_a_list_filters_by_company_references(api: httpx.Client) -> None:
    for tag in ("a", "b", "c"):
        company_without_source_id(api, tag)
        create(api, "projects", {"name": f"P{tag}", "companyId": f"extid-{tag}"})

    filtered = listing(api, "projects", companyId="extid-a,extid-c")

    assert sorted(p["name"] for p in filtered) == ["Pa", "Pc"]


@pytest.mark.parametrize(
    "params", [{"limit": "abc"}, {"limit": -1}, {"offset": "x"}, {"offset": -2}]
)
def test_a_list_refuses_an_invalid_limit_or_offset(api: httpx.Client, params: Record) -> None:
    assert api.get("/companies", params=params).status_code == 400


def test_an_update_keeps_a_records_place_in_the_default_order(api: httpx.Client) -> None:
    # Planhat lists in _id order by default; an offset pager relies on that order not
    # shifting while it pages, and a restarted (persistent) sandbox lists in this order.
    api.put("/companies", json=[{"externalId": n, "name": n} for n in ("a", "b", "c")])
    before = [c["_id"] for c in listing(api, "companies")]

    api.put("/companies/extid-a", json={"phone": "1"}).raise_for_status()

    assert [c["_id"] for c in listing(api, "companies")] == before
