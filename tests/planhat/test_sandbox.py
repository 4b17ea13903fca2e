"""The Planhat sandbox over HTTP: records, validation and references.

Plain httpx against the sandbox's socket, so these tests pin the HTTP behaviour itself (the
facts in shared/reference/planhat-api.md), not what our client makes of it.
"""

from __future__ import annotations

import httpx
import pytest

from connectors.planhat.models import MODELS
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests.planhat.sandbox_http import (
    MISSING_ID,
    OBJECT_ID,
    Record,
    company,
    create,
    license_,
    listing,
    parse_time,
)

# --- create, get, update, delete ---------------------------------------------------------


def test_create_returns_the_record_with_an_object_id_and_timestamps(api: httpx.Client) -> None:
    record = create(api, "companies", {"name": "Acme", "externalId": "acme", "phone": "1"})

    assert OBJECT_ID.match(record["_id"])
    assert (record["name"], record["externalId"], record["phone"]) == ("Acme", "acme", "1")
    assert parse_time(record["createdAt"]) <= parse_time(record["updatedAt"])


def test_get_finds_a_record_by_id_external_id_and_source_id(api: httpx.Client) -> None:
    acme = company(api, "acme")
    company(api, "other")

    for ref in (acme["_id"], "extid-acme", "srcid-src-acme"):
        response = api.get(f"/companies/{ref}")
        assert response.status_code == 200, ref
        assert response.json() == acme, ref


def test_an_external_id_with_a_slash_is_found_when_percent_encoded(api: httpx.Client) -> None:
    acme = company(api, "acme/eu")

    response = api.get("/companies/extid-acme%2Feu")

    assert response.status_code == 200
    assert response.json()["_id"] == acme["_id"]


def test_update_is_partial_and_merges_custom_per_key(api: httpx.Client) -> None:
    acme = company(api, "acme", industry="retail", custom={"tier": "gold", "seats": 5})

    response = api.put(f"/companies/{acme['_id']}", json={"phone": "2", "custom": {"seats": 7}})

    assert response.status_code == 200
    updated = response.json()
    assert updated["name"] == "Company acme"
    assert updated["industry"] == "retail"
    assert updated["phone"] == "2"
    assert updated["custom"] == {"tier": "gold", "seats": 7}
    assert api.get(f"/companies/{acme['_id']}").json() == updated


def test_update_by_source_id_changes_the_record_it_names(api: httpx.Client) -> None:
    acme = company(api, "acme")
    other = company(api, "other")

    response = api.put("/companies/srcid-src-acme", json={"name": "Renamed"})

    assert response.json()["_id"] == acme["_id"]
    assert api.get(f"/companies/{acme['_id']}").json()["name"] == "Renamed"
    assert api.get(f"/companies/{other['_id']}").json()["name"] == "Company other"


def test_update_bumps_updated_at_even_when_nothing_changes(
    sandbox: BackgroundSandbox, api: httpx.Client
) -> None:
    # A record last written in 2020 (put straight into the store), so the bump shows
    # without waiting for the clock to move.
    old = "2020-01-01T00:00:00.000Z"
    record = {"_id": "b" * 24, "name": "Acme", "createdAt": old, "updatedAt": old}
    sandbox.app.state.sandbox.store.save(MODELS["companies"], dict(record))

    response = api.put(f"/companies/{record['_id']}", json={"name": "Acme"})

    assert response.status_code == 200
    updated = response.json()
    assert updated["name"] == "Acme"
    assert updated["createdAt"] == old
    assert parse_time(updated["updatedAt"]) > parse_time(old)


def test_delete_answers_planhats_counts_and_removes_the_record(api: httpx.Client) -> None:
    acme = company(api, "acme")
    other = company(api, "other")

    response = api.delete("/companies/extid-acme")

    assert response.status_code == 200
    assert response.json() == {"n": 1, "ok": 1, "deletedCount": 1}
    assert api.get(f"/companies/{acme['_id']}").status_code == 404
    assert [c["_id"] for c in listing(api, "companies")] == [other["_id"]]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("ref", [MISSING_ID, "extid-nobody", "srcid-nobody"])
def test_an_unknown_id_answers_404(api: httpx.Client, method: str, ref: str) -> None:
    company(api, "acme")
    body = {"name": "x"} if method == "PUT" else None

    response = api.request(method, f"/companies/{ref}", json=body)

    assert response.status_code == 404
    assert [c["name"] for c in listing(api, "companies")] == ["Company acme"]


@pytest.mark.parametrize("path", ["/nope", "/nope/123"])
def test_an_unknown_model_answers_404(api: httpx.Client, path: str) -> None:
    assert api.get(path).status_code == 404
    assert api.put(path, json=[] if path == "/nope" else {}).status_code == 404


def test_a_body_that_is_not_json_is_400(api: httpx.Client) -> None:
    response = api.post("/companies", content=b"{not json")

    assert response.status_code == 400
    assert listing(api, "companies") == []


# --- required fields and value checks ----------------------------------------------------

REQUIRED_CASES = [
    ("companies", {"externalId": "x"}, ["name"]),
    ("licenses", license_("l1", "extid-acme", mrr=None), ["mrr", "value"]),
    ("licenses", license_("l1", "extid-acme", _currency=""), ["_currency"]),
    ("users", {"email": "a@b.c", "nickName": "a", "firstName": "A"}, ["lastName"]),
    ("invoices", {"cId": "extid-acme", "invoiceDate": 20_000}, ["currency"]),
    ("nps", {"score": 5}, ["email"]),
    ("issues", {"description": "no title"}, ["title"]),
    ("tasks", {"companyId": "extid-acme"}, ["mainType"]),
    ("sales", {"_currency": "USD", "companyId": "extid-acme", "value": 5}, ["salesDate"]),
]


@pytest.mark.parametrize(("model", "record", "fields"), REQUIRED_CASES)
def test_create_without_a_required_field_is_400_naming_it(
    api: httpx.Client, model: str, record: Record, fields: list[str]
) -> None:
    company(api, "acme")
    before = listing(api, model)

    response = api.post(f"/{model}", json=record)

    assert response.status_code == 400
    for field in fields:
        assert field in response.text
    assert listing(api, model) == before


@pytest.mark.parametrize("amount", [{"mrr": 100}, {"value": 1200}])
def test_a_license_needs_mrr_or_value_but_not_both(api: httpx.Client, amount: Record) -> None:
    company(api, "acme")
    record = license_("l1", "extid-acme", mrr=None) | amount

    assert api.post("/licenses", json=record).status_code == 200


VALUE_CASES = [
    ("nps", {"email": "a@b.c", "score": 11}, "score"),
    ("nps", {"email": "a@b.c", "score": -1}, "score"),
    ("nps", {"email": "a@b.c", "score": "9"}, "score"),
    ("sales", {"value": 0}, "value"),
    ("sales", {"value": -5}, "value"),
    ("invoices", {"invoiceDate": "2026-01-01"}, "invoiceDate"),
    ("invoices", {"invoiceDate": 20_000, "dueDate": "2026-02-01"}, "dueDate"),
    ("timeentries", {"date": "2026-03-01", "hours": 25}, "hours"),
]
VALID_BASE: dict[str, Record] = {
    "nps": {},
    "sales": {"_currency": "USD", "companyId": "extid-acme", "salesDate": "2026-02-01"},
    "invoices": {"currency": "USD", "cId": "extid-acme"},
    "timeentries": {},
}


@pytest.mark.parametrize(("model", "fields", "named"), VALUE_CASES)
def test_a_value_out_of_range_is_400(
    api: httpx.Client, model: str, fields: Record, named: str
) -> None:
    company(api, "acme")

    response = api.post(f"/{model}", json=VALID_BASE[model] | fields)

    assert response.status_code == 400
    assert named in response.text
    assert listing(api, model) == []


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("nps", {"email": "a@b.c", "score": 0}),
        ("nps", {"email": "a@b.c", "score": 10}),
        ("sales", {"value": 0.01}),
        ("invoices", {"invoiceDate": 20_000, "dueDate": 20_030}),
        ("timeentries", {"date": "2026-03-01", "hours": 24}),
    ],
)
def test_a_value_at_the_edge_of_its_range_is_accepted(
    api: httpx.Client, model: str, fields: Record
) -> None:
    company(api, "acme")

    assert api.post(f"/{model}", json=VALID_BASE[model] | fields).status_code == 200


def test_an_update_is_value_checked_too(api: httpx.Client) -> None:
    nps = create(api, "nps", {"email": "a@b.c", "score": 9})

    response = api.put(f"/nps/{nps['_id']}", json={"score": 11})

    assert response.status_code == 400
    assert api.get(f"/nps/{nps['_id']}").json()["score"] == 9


# --- references --------------------------------------------------------------------------


def test_a_reference_to_a_missing_company_is_400(api: httpx.Client) -> None:
    company(api, "acme")

    response = api.post("/projects", json={"name": "P", "companyId": "extid-missing"})

    assert response.status_code == 400
    assert "companyId" in response.text
    assert listing(api, "projects") == []


@pytest.mark.parametrize("ref", ["extid-acme", "srcid-src-acme", "id"])
def test_a_company_reference_is_stored_as_the_companys_id(api: httpx.Client, ref: str) -> None:
    acme = company(api, "acme")
    company(api, "other")
    ref = acme["_id"] if ref == "id" else ref

    project = create(api, "projects", {"name": "P", "companyId": ref})

    assert project["companyId"] == acme["_id"]
    assert api.get(f"/projects/{project['_id']}").json()["companyId"] == acme["_id"]


def test_invoices_are_keyed_by_ext_id_and_reference_the_company_as_c_id(
    api: httpx.Client,
) -> None:
    acme = company(api, "acme")
    invoice = {"extId": "inv-1", "cId": "extid-acme", "currency": "USD", "invoiceDate": 20_000}

    created = create(api, "invoices", invoice)
    upserted = api.put(
        "/invoices", json=[{"extId": "inv-1", "cId": "extid-acme", "amountTotal": 1}]
    )

    assert created["cId"] == acme["_id"]
    assert api.get("/invoices/extid-inv-1").json()["_id"] == created["_id"]
    assert upserted.json()["updated"] == 1
    assert api.get(f"/invoices/{created['_id']}").json()["amountTotal"] == 1
    assert api.post("/invoices", json={**invoice, "cId": "extid-missing"}).status_code == 400
