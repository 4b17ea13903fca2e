"""PlanhatClient against the sandbox where issue 13 checked the sandbox against Planhat:
custom fields keyed by name, unmatched keys, bulk answers, paging caps, rate limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from connectors.planhat.bulk import Outcome
from connectors.planhat.client import PlanhatClient
from connectors.planhat.errors import FatalError, RateLimitedError
from connectors.planhat.retry import RetryPolicy
from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox
from tests import stand_in_http
from tests.conftest import sandbox_stats
from tests.planhat.test_client import FakePlanhat, reply

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


# --- bulk answers: 400 and 403 carry per-record results (http-response-codes page) -------


def faults(sandbox: BackgroundSandbox, **settings: object) -> None:
    stand_in_http.post(f"{sandbox.url}/_sandbox/faults", json=settings).raise_for_status()


def gets(sandbox: BackgroundSandbox, model: str) -> int:
    routes = sandbox_stats(sandbox)["by_route"]
    assert isinstance(routes, dict)
    return int(routes.get(f"GET /{model}/:id", 0))


def test_a_json_400_rejects_each_record_with_its_own_reason(client: PlanhatClient) -> None:
    results = client.bulk_upsert("companies", [{"sourceId": "a"}, {"sourceId": "b", "phone": "1"}])

    assert [r.outcome for r in results] == [Outcome.REJECTED, Outcome.REJECTED]
    assert all("missing required field name" in (r.message or "") for r in results)


def test_a_403_keeps_the_writes_it_applied_and_rejects_the_denied_ones(
    client: PlanhatClient, sandbox: BackgroundSandbox
) -> None:
    client.bulk_upsert("companies", [{"sourceId": "old", "name": "Old"}])
    faults(sandbox, deny={"companies": ["create"]})

    results = client.bulk_upsert(
        "companies", [{"sourceId": "old", "name": "Renamed"}, {"sourceId": "new", "name": "New"}]
    )

    assert [r.outcome for r in results] == [Outcome.UPDATED, Outcome.REJECTED]
    assert results[0].id == client.get("companies", "srcid-old")["_id"]
    assert (results[1].message or "").startswith("permission denied: ")
    assert [c["name"] for c in client.list("companies")] == ["Renamed"]


def test_a_403_without_a_bulk_answer_is_still_fatal(
    client: PlanhatClient, sandbox: BackgroundSandbox
) -> None:
    faults(sandbox, deny={"companies": ["create"]})

    with pytest.raises(FatalError, match="denied permission"):
        client.create("companies", {"name": "A"})


def test_inserts_keys_with_only_an_id_are_tied_in_order_when_nothing_else_is_left(
    client: PlanhatClient, sandbox: BackgroundSandbox
) -> None:
    faults(sandbox, inserts_keys="id")
    records = [{"externalId": f"e{i}", "name": f"C{i}"} for i in range(3)]

    results = client.bulk_upsert("companies", records)

    assert [r.outcome for r in results] == [Outcome.CREATED] * 3
    assert [r.id for r in results] == [
        client.get("companies", f"extid-e{i}")["_id"] for i in range(3)
    ]
    assert gets(sandbox, "companies") == 3  # only the three checks above: no read-back


def test_inserts_keys_with_only_an_id_beside_a_dropped_record_are_read_back(
    client: PlanhatClient, sandbox: BackgroundSandbox
) -> None:
    # given endusers whose insertsKeys name only _id, and one Planhat silently drops
    client.create("companies", {"name": "Acme", "externalId": "acme"})
    faults(sandbox, inserts_keys="id")
    records = [
        {"sourceId": "u1", "email": "ada@acme.com", "companyId": "extid-acme"},
        {"sourceId": "u2", "email": "bob@nowhere.example"},  # no company: dropped
        {"sourceId": "u3", "email": "cy@acme.com", "companyId": "extid-acme"},
    ]

    # when
    results = client.bulk_upsert("endusers", records)

    # then the two written are told apart from the dropped one by reading them back
    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.IGNORED, Outcome.CREATED]
    assert gets(sandbox, "endusers") == 2
    assert results[0].id == client.get("endusers", "srcid-u1")["_id"]
    assert results[2].id == client.get("endusers", "srcid-u3")["_id"]


# --- rate limits: 429 with X-Rate-Limit-*, no guaranteed Retry-After --------------------
# https://docs.planhat.com (200/min, 150/s); planhat/docs source/includes/_intro.md (429,
# "reset every 60-120 seconds", X-Rate-Limit-Limit / -Remaining)

LIMITED = {"X-Rate-Limit-Limit": "200", "X-Rate-Limit-Remaining": "0"}


def test_429s_that_give_no_time_back_off_exponentially_up_to_120_s() -> None:
    server = FakePlanhat(*[reply(429, text="Too many requests", **LIMITED)] * 6, reply())

    with server.client(RetryPolicy(max_rate_limit_wait=1000)) as client:
        client.get("companies", "1")

    assert server.sleeps == [15.0, 30.0, 60.0, 120.0, 120.0, 120.0]


def test_a_guess_that_outlasts_the_policy_reaches_the_caller_marked_guessed() -> None:
    server = FakePlanhat(reply(429, text="Too many requests", **LIMITED))

    with (
        server.client(RetryPolicy(max_rate_limit_wait=0)) as client,
        pytest.raises(RateLimitedError) as caught,
    ):
        client.get("companies", "1")

    assert (caught.value.retry_after, caught.value.guessed) == (15.0, True)


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"X-Rate-Limit-Reset": "42"}, 42.0),  # seconds from now
        (  # a Unix time, against the answer's Date
            {"X-Rate-Limit-Reset": "1767225690", "Date": "Thu, 01 Jan 2026 00:00:00 GMT"},
            90.0,
        ),
        ({"Retry-After": "7", "X-Rate-Limit-Reset": "42"}, 7.0),  # Retry-After wins
    ],
)
def test_a_429_that_says_when_is_waited_exactly_and_not_guessed(
    headers: dict[str, str], wait: float
) -> None:
    server = FakePlanhat(reply(429, text="Too many requests", **headers), reply())

    with server.client() as client:
        client.get("companies", "1")

    assert server.sleeps == [wait]


def test_against_a_long_window_without_retry_after_the_client_does_not_hammer(
    start_sandbox: Callable[[SandboxConfig], BackgroundSandbox],
) -> None:
    # given a Planhat that resets 4 calls every 0.6 s and never says when (Planhat's
    # 60-120 s, scaled down 100 times; the guesses too: 15 s → 0.05 s, 120 s → 0.4 s)
    sandbox = start_sandbox(SandboxConfig(rate_per_minute=4, rate_window_s=0.6, retry_after=False))
    policy = RetryPolicy(max_rate_limit_wait=30, rate_limit_guess=0.05, rate_limit_guess_cap=0.4)

    # when ten calls go through it
    with PlanhatClient("t", base_url=sandbox.url, retry=policy) as client:
        for _ in range(10):
            client.list_page("companies")

    # then each of the two windows it ran out of cost at most four 429s (guesses of 0.05,
    # 0.1, 0.2 s all fall inside the window; 0.4 s outlasts it), not one every few ms
    stats = sandbox_stats(sandbox)
    assert stats["requests"] == 10 + stats["rate_limited"]
    assert isinstance(stats["rate_limited"], int)
    assert 1 <= stats["rate_limited"] <= 2 * 4


# --- /leancompanies and /myprofile ------------------------------------------------------


def test_lean_companies_are_every_company_paged(client: PlanhatClient) -> None:
    client.bulk_upsert("companies", [{"sourceId": f"c{i}", "name": f"C{i}"} for i in range(5)])

    lean = list(client.lean_companies(page_size=2))

    assert [c["name"] for c in lean] == [f"C{i}" for i in range(5)]
    assert {frozenset(c) for c in lean} == {frozenset({"_id", "name", "sourceId"})}


def test_my_profile_is_the_tokens_user(client: PlanhatClient) -> None:
    profile = client.my_profile()

    assert profile["_id"]
