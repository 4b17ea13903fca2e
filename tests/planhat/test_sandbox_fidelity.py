"""The sandbox where issue 13 checked it against Planhat's own pages: custom fields, time
entries, unmatched keys, bulk answers, paging caps, rate limits, lean companies, profiles.

Each test names its source (or says the behaviour is assumed), as docs/planhat-fidelity.md
does.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from connectors.planhat.sandbox import SandboxConfig, create_app
from connectors.planhat.sandbox.limiter import FixedWindow
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests import stand_in_http
from tests.planhat.sandbox_http import (
    BULK_ANSWER_KEYS,
    MISSING_ID,
    Start,
    client_for,
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


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [("text", "gold", 3), ("number", 3, "3"), ("date", "2024-01-31T00:00:00.000Z", "soon"),
     ("list", ["a", "b"], "a")],
)  # fmt: skip
def test_a_custom_value_not_of_its_fields_type_is_refused_naming_the_field(
    api: httpx.Client, kind: str, good: object, bad: object
) -> None:
    # Assumed: a field has a type (custom-field page); how another type is answered is not
    # documented. Names no field defines, and null, are taken as before.
    create(api, "customfields", {**FIELD, "type": kind})
    company = create(api, "companies", {"name": "Acme", "custom": {"tier": good, "free": 1}})

    refused = api.put(f"/companies/{company['_id']}", json={"custom": {"tier": bad}})
    bulk = api.put("/companies", json=[{"_id": company["_id"], "custom": {"tier": bad}}])
    emptied = api.put(f"/companies/{company['_id']}", json={"custom": {"tier": None}})

    assert refused.status_code == 400
    assert f"custom field 'tier' takes a {kind} value" in refused.text
    assert "tier" in bulk.json()["updatedErrors"][0]["message"]
    assert emptied.status_code == 200


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


# --- bulk answers (https://www.planhat.com/developers/api/http-response-codes) -----------


def faults(api: httpx.Client, **settings: object) -> None:
    api.post("/_sandbox/faults", json=settings).raise_for_status()


def test_a_bulk_upsert_where_every_item_fails_is_a_json_400(api: httpx.Client) -> None:
    # 206 is "some operations were successful"; with none, the payload is bad: 400, its
    # errors in createdErrors/updatedErrors (an inference from the page).
    response = api.put("/companies", json=[{"sourceId": "a"}, {"sourceId": "b"}])

    assert response.status_code == 400
    answer = response.json()
    assert set(answer) == BULK_ANSWER_KEYS
    assert [e["sourceId"] for e in answer["createdErrors"]] == ["a", "b"]
    assert all("name" in e["message"] for e in answer["createdErrors"])
    assert listing(api, "companies") == []


def test_a_bulk_upsert_where_some_items_fail_is_a_206(api: httpx.Client) -> None:
    response = api.put("/companies", json=[{"sourceId": "a", "name": "A"}, {"sourceId": "b"}])

    assert response.status_code == 206
    assert [e["sourceId"] for e in response.json()["createdErrors"]] == ["b"]


def test_a_key_named_twice_is_a_json_400_naming_the_key(api: httpx.Client) -> None:
    items = [{"sourceId": "s1", "name": "A"}, {"sourceId": "s1", "name": "B"}]

    response = api.put("/companies", json=items)

    assert response.status_code == 400
    [error] = response.json()["createdErrors"]
    assert error["sourceId"] == "s1"
    assert "duplicate" in error["message"]
    assert listing(api, "companies") == []


@pytest.mark.parametrize("body", [{"name": "A"}, [{"name": "x"}] * 5001])
def test_a_payload_refused_as_a_whole_is_a_json_400_too(api: httpx.Client, body: object) -> None:
    response = api.put("/companies", json=body)

    assert response.status_code == 400
    [error] = response.json()["createdErrors"]
    assert error["message"]


def test_a_denied_operation_is_a_403_with_permission_errors_and_the_rest_applied(
    api: httpx.Client,
) -> None:
    company(api, "acme")
    existing = create(api, "projects", {"name": "Old", "sourceId": "p1", "companyId": "extid-acme"})
    faults(api, deny={"projects": ["create"]})

    response = api.put(
        "/projects",
        json=[
            {"sourceId": "p1", "name": "Renamed"},
            {"sourceId": "p2", "name": "New", "companyId": "extid-acme"},
        ],
    )

    # "permission error … to execute one or all the operations. Check the
    # permissionErrors section": the update was allowed, and applied
    assert response.status_code == 403
    answer = response.json()
    assert set(answer) == BULK_ANSWER_KEYS
    assert (answer["updated"], answer["modified"]) == (1, [existing["_id"]])
    [denied] = answer["permissionErrors"]
    assert denied["sourceId"] == "p2"
    assert [p["name"] for p in listing(api, "projects")] == ["Renamed"]
    assert api.post("/projects", json={"name": "X", "companyId": "extid-acme"}).status_code == 403


def test_reset_lifts_denied_operations(sandbox: BackgroundSandbox, api: httpx.Client) -> None:
    faults(api, deny={"companies": ["create", "update", "delete"]})
    assert api.post("/companies", json={"name": "A"}).status_code == 403

    stand_in_http.post(f"{sandbox.url}/_sandbox/reset").raise_for_status()

    assert api.post("/companies", json={"name": "A"}).status_code == 200


@pytest.mark.parametrize("deny", [{"nope": ["create"]}, {"companies": ["patch"]}, []])
def test_an_unknown_model_or_operation_to_deny_is_refused(api: httpx.Client, deny: object) -> None:
    response = api.post("/_sandbox/faults", json={"deny": deny})

    assert response.status_code == 400


def test_inserts_keys_may_carry_only_the_id(api: httpx.Client) -> None:
    # hull/hull-planhat __tests__/_scenarios/account-insert-licenses: a license sent with
    # an externalId comes back as {"_id": …} alone
    faults(api, inserts_keys="id")

    answer = api.put("/companies", json=[{"externalId": "e1", "name": "A"}]).json()

    [record] = listing(api, "companies")
    assert answer["insertsKeys"] == [{"_id": record["_id"]}]


# --- rate limits: 429 with X-Rate-Limit-*, no Retry-After promised, long windows ---------
# https://docs.planhat.com (200/min, 150/s); planhat/docs source/includes/_intro.md


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_allows_its_calls_then_refuses_until_it_resets() -> None:
    clock = FakeClock()
    window = FixedWindow(3, 90, clock=clock)

    decisions = [window.take("t") for _ in range(4)]
    clock.now += 89
    still = window.take("t")
    clock.now += 1
    after = window.take("t")

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after == 90
    assert not still.allowed
    assert (after.allowed, after.remaining) == (True, 2)


def test_a_429_may_come_without_retry_after_but_with_the_limit_headers(
    start_sandbox: Start,
) -> None:
    config = SandboxConfig(rate_per_minute=2, rate_window_s=120, retry_after=False)
    with client_for(start_sandbox(config)) as api:
        answers = [api.get("/companies") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.text == "Too many requests"
    assert "Retry-After" not in refused.headers
    assert (refused.headers["X-Rate-Limit-Limit"], refused.headers["X-Rate-Limit-Remaining"]) == (
        "2",
        "0",
    )


def test_retry_after_can_be_switched_off_while_running(start_sandbox: Start) -> None:
    sandbox = start_sandbox(SandboxConfig(rate_per_minute=1, burst=1))
    with client_for(sandbox) as api:
        api.post("/_sandbox/faults", json={"retry_after": False}).raise_for_status()
        api.get("/companies")
        refused = api.get("/companies")

    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers


def test_the_hard_limit_per_second_refuses_without_spending_the_quota(
    start_sandbox: Start,
) -> None:
    config = SandboxConfig(rate_per_minute=1e6, burst=10**6, per_second=5)
    with client_for(start_sandbox(config)) as api:
        answers = [api.get("/companies").status_code for _ in range(6)]

    assert answers[:5] == [200] * 5
    assert answers[5] == 429  # six in well under a second


# --- /leancompanies and /myprofile ------------------------------------------------------


def test_lean_companies_list_each_company_by_id_name_and_keys_only(api: httpx.Client) -> None:
    acme = company(api, "acme", phone="1", custom={"tier": "gold"})
    create(api, "companies", {"name": "Bare"})

    response = api.get("/leancompanies")

    assert response.status_code == 200
    assert response.json() == [
        {"_id": acme["_id"], "name": "Company acme", "externalId": "acme", "sourceId": "src-acme"},
        {"_id": listing(api, "companies")[1]["_id"], "name": "Bare"},
    ]


def test_lean_companies_page_with_limit_and_offset(api: httpx.Client) -> None:
    api.put("/companies", json=[{"name": f"C{i}"} for i in range(5)]).raise_for_status()

    page = api.get("/leancompanies", params={"limit": 2, "offset": 3}).json()

    assert [c["name"] for c in page] == ["C3", "C4"]


def test_my_profile_says_who_the_token_is(sandbox: BackgroundSandbox, api: httpx.Client) -> None:
    first = api.get("/myprofile").json()
    again = api.get("/myprofile").json()
    other = stand_in_http.get(f"{sandbox.url}/myprofile", headers={"Authorization": "Bearer other"})

    assert first == again
    assert set(first) >= {"_id", "email"}
    assert other.json()["_id"] != first["_id"]


@pytest.mark.parametrize("path", ["/myprofile", "/leancompanies"])
def test_my_profile_and_lean_companies_need_a_known_token(start_sandbox: Start, path: str) -> None:
    sandbox = start_sandbox(SandboxConfig(tokens=frozenset({"good"})))
    with client_for(sandbox, "bad") as api:
        assert api.get(path).status_code == 401
    with client_for(sandbox, "good") as api:
        assert api.get(path).status_code == 200


# --- behaviours no source confirms (issue 13, item 11): pinned here, marked "assumed" ----


def test_a_request_whose_caller_left_before_its_body_came_is_499_and_writes_nothing() -> None:
    # Assumed (nginx's 499): what Planhat does with a request cut short is not documented.
    app = create_app(SandboxConfig(rate_per_minute=1e6, burst=1000))
    sent: list[dict[str, object]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/companies",
        "raw_path": b"/companies",
        "query_string": b"",
        "headers": [(b"authorization", b"Bearer t"), (b"content-length", b"20")],
        "server": ("sandbox", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))

    assert sent[0]["status"] == 499
    assert app.state.sandbox.store.count("companies") == 0
