"""The Planhat contract: what planhat-sync relies on, for every model and operation, and
each behaviour of the sandbox that issue 13 could not back with a source (the checks at the
end, one per assumption): one command confirms or refutes them on a real tenant.

Runs against the sandbox always, and against the real API when PLANHAT_API_TOKEN and
PLANHAT_LIVE_TESTS=1 are set. Live, it is read-only unless PLANHAT_LIVE_WRITES=1 too: a
check that would write is skipped at its first write (the guard is the HTTP transport).
With writes allowed it writes only records it creates, tagged ``phs-contract-``, and
deletes them.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.planhat.bulk import Outcome
from connectors.planhat.client import DEFAULT_BASE_URL, PlanhatClient
from connectors.planhat.errors import NotFoundError, PlanhatError, rate_limit_wait
from connectors.planhat.models import MODELS, Operation
from connectors.planhat.regions import check_token
from connectors.planhat.retry import RetryPolicy
from tests import stand_in_http
from tests.conftest import FAST_RETRY
from tests.planhat.samples import change, refs, sample

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


WRITES = ("POST", "PUT", "PATCH", "DELETE")


class Guard(httpx.BaseTransport):
    """Live, lets reads through and skips the test at a write unless PLANHAT_LIVE_WRITES=1.
    With ``patient``, waits out 429s as the client would (for a check's raw calls)."""

    def __init__(self, *, live: bool, patient: bool) -> None:
        self.inner = httpx.HTTPTransport()
        self.live, self.patient = live, patient

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        writes = os.environ.get("PLANHAT_LIVE_WRITES") == "1"
        if self.live and request.method in WRITES and not writes:
            pytest.skip("writes to the live tenant: set PLANHAT_LIVE_WRITES=1 to run this check")
        policy = RetryPolicy()
        for guess in range(1, 8):
            response = self.inner.handle_request(request)
            if response.status_code != 429 or not self.patient:
                break
            wait = rate_limit_wait(response)
            response.close()
            time.sleep(max(1.0, policy.rate_limit_guess_for(guess) if wait is None else wait))
        return response

    def close(self) -> None:
        self.inner.close()


@dataclass
class Target:
    client: PlanhatClient
    run: str  # unique per test run, so live records never collide
    raw: httpx.Client  # the same Planhat, token and guard, for answers the client hides
    base_url: str
    token: str
    live: bool
    made: list[tuple[str, str]] = field(default_factory=list)  # (model, _id) to clean up
    _company: str | None = None

    def sandbox_only(self, why: str) -> None:
        if self.live:
            pytest.skip(f"sandbox only: {why}")

    def faults(self, **settings: Any) -> None:
        """The sandbox's fault controls (sandbox-only checks)."""
        stand_in_http.post(f"{self.base_url}/_sandbox/faults", json=settings).raise_for_status()

    def tag(self, name: str) -> str:
        return f"phs-contract-{self.run}-{name}"

    def company(self) -> str:
        """A reference to a company made for this test."""
        if self._company is None:
            record = self.client.create("companies", sample("companies", self.tag("co"), ""))
            self.made.append(("companies", record["_id"]))
            self._company = f"extid-{record['externalId']}"
        return self._company

    def cleanup(self) -> None:
        for model, record_id in reversed(self.made):
            with contextlib.suppress(NotFoundError):
                self.client.delete(model, record_id)


@pytest.fixture(params=["sandbox", pytest.param("live", marks=pytest.mark.live)])
def planhat(request: pytest.FixtureRequest) -> Iterator[Target]:
    live = request.param == "live"
    if live:
        if os.environ.get("PLANHAT_LIVE_TESTS") != "1" or not os.environ.get("PLANHAT_API_TOKEN"):
            pytest.skip("live contract: set PLANHAT_API_TOKEN and PLANHAT_LIVE_TESTS=1 to run it")
        token = os.environ["PLANHAT_API_TOKEN"]
        base_url = os.environ.get("PLANHAT_BASE_URL", DEFAULT_BASE_URL).rstrip("/")
        guard = Guard(live=True, patient=False)  # the client waits out 429s itself
        client = PlanhatClient(token, base_url=base_url, transport=guard)
    else:
        token, base_url = "contract", request.getfixturevalue("sandbox").url
        client = PlanhatClient(token, base_url=base_url, retry=FAST_RETRY)
    raw = httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        transport=Guard(live=live, patient=True),
        timeout=60,
    )
    target = Target(
        client=client, run=uuid.uuid4().hex[:8], raw=raw, base_url=base_url, token=token, live=live
    )
    try:
        yield target
    finally:
        target.cleanup()
        client.close()
        raw.close()


def _ids(records: list[dict[str, Any]]) -> set[str]:
    return {record["_id"] for record in records}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_operation_of_the_model_works(planhat: Target, model: str) -> None:
    spec = MODELS[model]
    client = planhat.client
    company = planhat.company() if spec.company_key else ""
    first = sample(model, planhat.tag(f"{model}-1"), company)

    # create (tickets are bulk-only: their create is an upsert)
    if spec.supports(Operation.CREATE):
        record_id = client.create(model, first)["_id"]
    else:
        [result] = client.bulk_upsert(model, [first])
        assert result.outcome is Outcome.CREATED, result
        assert result.id is not None
        record_id = result.id
    planhat.made.append((model, record_id))
    assert OBJECT_ID.match(record_id)

    # get by _id, extid- and srcid- (custom fields: by _id only)
    ways = refs(model, first, record_id)
    if spec.supports(Operation.GET):
        for ref in ways:
            got = client.get(model, ref)
            assert got["_id"] == record_id, ref
            assert got.get("sourceId") == first.get("sourceId")

    # update
    name, value = change(model)
    if spec.supports(Operation.UPDATE):
        assert client.update(model, ways[-1], {name: value})[name] == value
        assert client.get(model, record_id)[name] == value

    # list (filtered by company where the model has one)
    listed = list(client.list(model, company_ids=[company] if spec.company_key else None))
    assert record_id in _ids(listed)

    # bulk upsert: one update by sourceId, one insert; the same again changes nothing
    if spec.supports(Operation.UPSERT):
        second = sample(model, planhat.tag(f"{model}-2"), company)
        batch = [{"sourceId": first["sourceId"], name: value}, second]
        if model == "tickets":
            batch[0]["email"] = first["email"]
        results = client.bulk_upsert(model, batch)
        assert [r.outcome for r in results][1] is Outcome.CREATED, results
        assert results[0].outcome in (Outcome.UPDATED, Outcome.UNCHANGED), results
        assert results[0].id == record_id
        assert results[1].id is not None
        planhat.made.append((model, results[1].id))
        again = client.bulk_upsert(model, batch)
        assert [r.outcome for r in again] == [Outcome.UNCHANGED] * 2, again
        assert [r.id for r in again] == [record_id, results[1].id]

    # delete
    assert client.delete(model, record_id) == {"n": 1, "ok": 1, "deletedCount": 1}
    if spec.supports(Operation.GET):
        with pytest.raises(NotFoundError):
            client.get(model, record_id)
    assert record_id not in _ids(list(client.list(model)))


def test_bulk_upsert_matches_on_external_id_within_the_company(planhat: Target) -> None:
    client = planhat.client
    company = planhat.company()
    tag = planhat.tag("ext")
    [created] = client.bulk_upsert(
        "licenses", [{**sample("licenses", tag, company), "sourceId": None}]
    )
    planhat.made.append(("licenses", str(created.id)))
    [updated] = client.bulk_upsert(
        "licenses", [{"externalId": f"ext-{tag}", "companyId": company, "mrr": 900}]
    )
    assert updated.outcome is Outcome.UPDATED
    assert updated.id == created.id
    assert client.get("licenses", str(created.id))["mrr"] == 900


def test_invoices_are_keyed_by_ext_id_and_c_id(planhat: Target) -> None:
    client = planhat.client
    company = planhat.company()
    tag = planhat.tag("inv")
    [created] = client.bulk_upsert("invoices", [sample("invoices", tag, company)])
    planhat.made.append(("invoices", str(created.id)))
    [updated] = client.bulk_upsert(
        "invoices", [{"extId": f"ext-{tag}", "cId": company, "amountTotal": 42}]
    )
    assert (created.outcome, updated.outcome) == (Outcome.CREATED, Outcome.UPDATED)
    assert client.get("invoices", f"extid-ext-{tag}")["amountTotal"] == 42


def test_list_pages_until_a_short_page(planhat: Target) -> None:
    client = planhat.client
    company = planhat.company()
    records = [sample("licenses", planhat.tag(f"page-{i}"), company) for i in range(5)]
    results = client.bulk_upsert("licenses", records)
    planhat.made.extend(("licenses", str(r.id)) for r in results)
    listed = list(client.list("licenses", page_size=2, company_ids=[company]))
    assert _ids(listed) == {r.id for r in results}


def test_a_rejected_record_carries_planhats_reason(planhat: Target) -> None:
    client = planhat.client
    company = planhat.company()
    good = sample("licenses", planhat.tag("good"), company)
    bad = {**sample("licenses", planhat.tag("bad"), company), "_currency": None}
    results = client.bulk_upsert("licenses", [good, bad])
    planhat.made.extend(("licenses", str(r.id)) for r in results if r.id)
    assert results[0].outcome is Outcome.CREATED
    assert results[1].outcome is Outcome.REJECTED
    assert results[1].message


def test_a_missing_required_field_is_refused_with_a_message(planhat: Target) -> None:
    with pytest.raises(PlanhatError) as refused:
        planhat.client.create("companies", {"externalId": planhat.tag("noname")})
    assert refused.value.status_code == 400
    assert "name" in refused.value.message


# --- records as Planhat keeps them (issue 13, items 2, 3 and 6) ---------------------------
# Each check states one behaviour the sandbox has, and its source or "assumed": run live,
# a failure refutes it. E-mails use a domain of their own per run, so domain placement and
# the domains Planhat fills in touch only the records made here.


def _domain(planhat: Target, name: str) -> str:
    return f"{planhat.tag(name)}.example.com"


def _endusers_of(planhat: Target, company: str) -> list[dict[str, Any]]:
    """The endusers of ``company``, remembered for cleanup (before their company)."""
    endusers = list(planhat.client.list("endusers", company_ids=[company]))
    planhat.made.extend(("endusers", enduser["_id"]) for enduser in endusers)
    return endusers


def test_an_enduser_email_is_a_key_when_unique(planhat: Target) -> None:
    # support.planhat.com/en/articles/8146372: e-mail is "Keyable (if unique)"
    client = planhat.client
    company = planhat.company()
    email = f"ada@{_domain(planhat, 'key')}"

    [created] = client.bulk_upsert("endusers", [{"email": email, "companyId": company}])
    [again] = client.bulk_upsert("endusers", [{"email": email, "lastName": "Lovelace"}])

    endusers = _endusers_of(planhat, company)
    assert (created.outcome, again.outcome) == (Outcome.CREATED, Outcome.UPDATED)
    assert [(e["email"], e.get("lastName")) for e in endusers] == [(email, "Lovelace")]


def test_an_enduser_with_a_source_id_of_its_own_is_another_enduser(planhat: Target) -> None:
    # support.planhat.com/en/articles/8146372: endusers may share an e-mail "provided
    # externalId or sourceId is unique"; that the e-mail is then not tried is assumed
    client = planhat.client
    company = planhat.company()
    email = f"bo@{_domain(planhat, 'twin')}"
    twins = [{"sourceId": planhat.tag(f"twin-{n}"), "email": email, "companyId": company}
             for n in (1, 2)]  # fmt: skip

    results = [client.bulk_upsert("endusers", [twin])[0] for twin in twins]

    assert len(_endusers_of(planhat, company)) == 2
    assert [r.outcome for r in results] == [Outcome.CREATED] * 2


def test_an_enduser_without_company_goes_to_its_domains_company_or_nowhere(
    planhat: Target,
) -> None:
    # planhat.com/developers/api/enduser (domain matching); help.planhat.com/en/articles/
    # 9586991 ("it will not be saved and instead the request is ignored")
    client = planhat.client
    domain = _domain(planhat, "placed")
    company = client.create("companies", {"name": planhat.tag("placed"), "domains": [domain]})
    planhat.made.append(("companies", company["_id"]))

    [placed] = client.bulk_upsert("endusers", [{"email": f"ada@{domain}"}])
    [nowhere] = client.bulk_upsert("endusers", [{"email": f"kim@{_domain(planhat, 'none')}"}])

    planhat.made.extend(("endusers", r.id) for r in (placed, nowhere) if r.id)
    assert [e["email"] for e in _endusers_of(planhat, company["_id"])] == [f"ada@{domain}"]
    assert (placed.outcome, nowhere.outcome) == (Outcome.CREATED, Outcome.IGNORED)


def test_an_enduser_goes_to_the_company_its_company_external_id_names(planhat: Target) -> None:
    # help.planhat.com/en/articles/9586991: "send the corresponding companyId or
    # companyExternalId"
    client = planhat.client
    company = planhat.company()
    email = f"lee@{_domain(planhat, 'extid')}"

    client.bulk_upsert("endusers", [{"email": email, "companyExternalId": company[6:]}])

    assert [e["email"] for e in _endusers_of(planhat, company)] == [email]


def test_a_companys_domains_fill_in_from_its_endusers(planhat: Target) -> None:
    # planhat.com/developers/api/company: domains "based on endusers emails domains"
    client = planhat.client
    company = planhat.company()
    domain = _domain(planhat, "fill")

    client.bulk_upsert("endusers", [{"email": f"sam@{domain}", "companyId": company}])

    _endusers_of(planhat, company)
    assert domain in client.get("companies", company).get("domains", [])


def test_a_ticket_is_a_conversation_of_type_ticket_that_makes_its_enduser(
    planhat: Target,
) -> None:
    # planhat.com/developers/api/ticket (tickets are conversations, type set by Planhat);
    # planhat/docs source/includes/_tickets.md (one object or an array; createdAt sent by
    # the source; "Planhat will create a new user")
    client = planhat.client
    company = planhat.company()
    email = f"max@{_domain(planhat, 'ticket')}"
    ticket = {"source": "phs-contract", "sourceId": planhat.tag("ticket"), "email": email,
              "companyId": company, "title": planhat.tag("ticket"),
              "createdAt": "2016-10-17T14:00:00.000Z"}  # fmt: skip

    # one object, not an array: the client only sends arrays
    client._send("PUT", "/tickets", body=ticket, resend_safe=True)

    [listed] = client.list("tickets", company_ids=[company])
    planhat.made.append(("tickets", listed["_id"]))
    endusers = _endusers_of(planhat, company)
    conversation = client.get("conversations", listed["_id"])
    assert (conversation["type"], conversation["title"]) == ("ticket", ticket["title"])
    assert conversation["createdAt"].startswith("2016-10-17")
    assert [e["email"] for e in endusers] == [email]


def test_companies_and_endusers_say_create_date_and_last_updated(planhat: Target) -> None:
    # hull/hull-planhat __tests__ fixtures and airbyte's source-planhat manifest: createDate
    # (companies, endusers), lastUpdated (companies); createdAt and updatedAt on every record
    # (shared/reference/planhat-api.md)
    client = planhat.client
    company = planhat.company()
    enduser = {"email": f"eve@{_domain(planhat, 'ts')}", "companyId": company}
    [made] = client.bulk_upsert("endusers", [enduser])
    planhat.made.append(("endusers", str(made.id)))
    license_ = client.create("licenses", sample("licenses", planhat.tag("ts"), company))
    planhat.made.append(("licenses", license_["_id"]))

    assert {"createdAt", "updatedAt", "createDate", "lastUpdated"} <= set(
        client.get("companies", company)
    )
    assert {"createdAt", "updatedAt", "createDate"} <= set(client.get("endusers", str(made.id)))
    assert {"createdAt", "updatedAt"} <= set(client.get("licenses", license_["_id"]))


def test_records_carry_a_version_key(planhat: Target) -> None:
    # assumed (audit row 19): Mongoose's __v, seen in hull/hull-planhat's fixtures
    assert "__v" in planhat.client.get("companies", planhat.company())


def test_a_license_shows_the_fields_planhat_computes(planhat: Target) -> None:
    # planhat.com/developers/api/license: companyName "(Autogenerated)"; arr from mrr
    # (audit row 21); renewalDaysFromNow as days to renewalDate: assumed
    client = planhat.client
    company = planhat.company()
    renewal = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    record = {**sample("licenses", planhat.tag("calc"), company), "renewalDate": renewal}

    made = client.create("licenses", record)
    planhat.made.append(("licenses", made["_id"]))

    shown = client.get("licenses", made["_id"])
    assert shown["arr"] == 12 * record["mrr"]
    assert shown["companyName"] == client.get("companies", company)["name"]
    assert shown["renewalDaysFromNow"] in (29, 30, 31)


def test_computed_fields_sent_are_ignored(planhat: Target) -> None:
    # assumed: Planhat takes no arr or companyName from the caller
    client = planhat.client
    company = planhat.company()
    record = {**sample("licenses", planhat.tag("sent"), company), "arr": 1, "companyName": "X"}

    [made] = client.bulk_upsert("licenses", [record])
    planhat.made.append(("licenses", str(made.id)))

    shown = client.get("licenses", str(made.id))
    assert (shown["arr"], shown["companyName"]) != (1, "X")
    assert shown["arr"] == 12 * record["mrr"]


def test_a_companys_status_follows_its_licenses(planhat: Target) -> None:
    # planhat.com/developers/api/company: status "(Autogenerated)", one of prospect, coming,
    # customer, canceled, lost; support.planhat.com/en/articles/1697510
    client = planhat.client
    company = planhat.company()
    before = client.get("companies", company)["status"]

    made = client.create("licenses", sample("licenses", planhat.tag("status"), company))
    planhat.made.append(("licenses", made["_id"]))

    assert (before, client.get("companies", company)["status"]) == ("prospect", "customer")


def test_every_write_moves_updated_at_and_the_last_written_list_first(planhat: Target) -> None:
    # shared/reference/planhat-api.md: "Planhat bumps updatedAt on every write, even when
    # nothing changed"; the survey linking reads new endusers back with sort=-updatedAt
    client = planhat.client
    company = planhat.company()
    enduser = {"email": f"zoe@{_domain(planhat, 'bump')}", "companyId": company}
    [made] = client.bulk_upsert("endusers", [enduser])
    planhat.made.append(("endusers", str(made.id)))
    before = client.get("endusers", str(made.id))["updatedAt"]
    time.sleep(0.05)

    client.bulk_upsert("endusers", [enduser])  # the same again

    assert client.get("endusers", str(made.id))["updatedAt"] > before
    latest = client.list_page("endusers", limit=100, sort="-updatedAt", select=["_id"])
    assert str(made.id) in {e["_id"] for e in latest}


# --- issue 13: each check confirms (or, live, refutes) one behaviour of the sandbox -------
# Sources are in docs/planhat-fidelity.md; "assumed" ones are what a live run settles.


def _new_object_id() -> str:
    return uuid.uuid4().hex[:24]


def test_bulk_answer_inserts_keys_carry_the_id_and_at_most_the_keys_sent(planhat: Target) -> None:
    # robocorp-planhat: {_id, externalId}; hull-planhat: {_id} alone. Both are handled.
    tag = planhat.tag("ins")
    response = planhat.raw.put(
        "/companies", json=[{"sourceId": f"src-{tag}", "externalId": f"ext-{tag}", "name": tag}]
    )
    answer = response.json()
    planhat.made.extend(("companies", i) for i in answer.get("upsertedIds", []))

    assert response.status_code == 200
    [entry] = answer["insertsKeys"]
    assert OBJECT_ID.match(entry["_id"])
    assert set(entry) <= {"_id", "sourceId", "externalId"}


def test_a_bulk_upsert_where_every_item_fails_is_a_400_with_created_errors(
    planhat: Target,
) -> None:
    # http-response-codes: 400 "a required key is missing …, check createdErrors"; that
    # it is 400 (not 206) when nothing was written is an inference
    tag = planhat.tag("no-name")
    response = planhat.raw.put("/companies", json=[{"sourceId": f"src-{tag}"}])
    with contextlib.suppress(NotFoundError):  # should Planhat have written it after all
        planhat.made.append(
            ("companies", planhat.client.get("companies", f"srcid-src-{tag}")["_id"])
        )

    assert response.status_code == 400
    assert response.json()["createdErrors"]


def test_a_partial_403_keeps_the_permitted_writes(planhat: Target) -> None:
    planhat.sandbox_only("needs a token denied some operations")
    tag = planhat.tag("perm")
    [old] = planhat.client.bulk_upsert("companies", [{"sourceId": f"{tag}-old", "name": "Old"}])
    planhat.faults(deny={"companies": ["create"]})

    results = planhat.client.bulk_upsert(
        "companies",
        [{"sourceId": f"{tag}-old", "name": "New"}, {"sourceId": f"{tag}-new", "name": "N"}],
    )

    assert [r.outcome for r in results] == [Outcome.UPDATED, Outcome.REJECTED]
    assert results[0].id == old.id


def test_a_bulk_item_whose_id_matches_nothing_is_created_under_a_new_id(planhat: Target) -> None:
    # bulk-upsert page: "a new record will be created"; under a new _id: assumed
    ghost = _new_object_id()
    tag = planhat.tag("ghost")
    [result] = planhat.client.bulk_upsert(
        "companies", [{"_id": ghost, "sourceId": f"src-{tag}", "name": tag}]
    )
    if result.id:
        planhat.made.append(("companies", result.id))

    assert result.outcome is Outcome.CREATED
    assert result.id == planhat.client.get("companies", f"srcid-src-{tag}")["_id"]
    assert result.id != ghost


@pytest.mark.parametrize(("model", "cap"), [("companies", 5000), ("licenses", 2000)])
def test_a_page_larger_than_the_cap_is_cut_to_the_cap_not_refused(
    planhat: Target, model: str, cap: int
) -> None:
    # read-only; it shows the cap itself only on a tenant with more records than the cap
    response = planhat.raw.get(f"/{model}", params={"limit": cap + 1, "select": "_id"})

    assert response.status_code == 200
    assert len(response.json()) <= cap


def test_an_answer_carries_the_rate_limit_headers(planhat: Target) -> None:
    # planhat/docs _intro.md: "each response includes information about your limit"
    response = planhat.raw.get("/companies", params={"limit": 1, "select": "_id"})

    assert response.status_code == 200
    assert int(response.headers["X-Rate-Limit-Limit"]) > 0
    assert int(response.headers["X-Rate-Limit-Remaining"]) >= 0


def test_custom_fields_need_is_hidden_and_are_updated_by_name(planhat: Target) -> None:
    # custom-field page: isHidden required, no externalId/sourceId; keyed here by name
    name = planhat.tag("cf")
    field = {"name": name, "parent": "company", "type": "text"}
    refused = planhat.raw.post("/customfields", json=field)
    if refused.status_code == 200:
        planhat.made.append(("customfields", refused.json()["_id"]))
    [created] = planhat.client.upsert_each(
        "customfields", [{**field, "name": f"{name}-2", "isHidden": False}], key_field="name"
    )
    if created.id:
        planhat.made.append(("customfields", created.id))
    [updated] = planhat.client.upsert_each(
        "customfields", [{**field, "name": f"{name}-2", "isHidden": True}], key_field="name"
    )

    assert refused.status_code == 400
    assert (created.outcome, updated.outcome) == (Outcome.CREATED, Outcome.UPDATED)
    assert updated.id == created.id
    assert planhat.client.get("customfields", str(created.id))["isHidden"] is True
    assert planhat.raw.get(f"/customfields/srcid-{name}").status_code == 404


def test_a_time_entry_links_to_its_company_by_company_id(planhat: Target) -> None:
    company_ref = planhat.company()
    entry = planhat.client.create(
        "timeentries", {"date": "2026-03-01", "hours": 1.5, "companyId": company_ref}
    )
    planhat.made.append(("timeentries", entry["_id"]))
    company_id = planhat.client.get("companies", company_ref)["_id"]

    assert entry["companyId"] == company_id
    listed = planhat.client.list("timeentries", company_ids=[company_id])
    assert entry["_id"] in _ids(list(listed))


def test_lean_companies_list_a_company_by_id_and_name(planhat: Target) -> None:
    company_id = planhat.client.get("companies", planhat.company())["_id"]

    lean = {c["_id"]: c for c in planhat.client.lean_companies()}

    assert lean[company_id]["name"].startswith("Company phs-contract-")
    assert set(lean[company_id]) <= {"_id", "name", "externalId", "sourceId"}


def test_my_profile_answers_for_the_token_and_the_check_passes(planhat: Target) -> None:
    profile = planhat.client.my_profile()
    checked = check_token(planhat.token, planhat.base_url)

    assert profile.get("_id")
    assert checked.ok, checked.line()


# --- behaviours no source confirms (issue 13, item 11) ---------------------------------


def test_a_second_record_with_a_taken_source_id_is_refused(planhat: Target) -> None:
    tag = planhat.tag("dup")
    first = planhat.client.create("companies", {"name": tag, "sourceId": f"src-{tag}"})
    planhat.made.append(("companies", first["_id"]))

    second = planhat.raw.post("/companies", json={"name": f"{tag}-2", "sourceId": f"src-{tag}"})
    if second.status_code == 200:
        planhat.made.append(("companies", second.json()["_id"]))

    assert second.status_code == 400


def test_a_company_filter_naming_no_company_is_a_400(planhat: Target) -> None:
    response = planhat.raw.get("/licenses", params={"companyId": _new_object_id(), "limit": 1})

    assert response.status_code == 400


def test_an_update_merges_custom_values_key_by_key(planhat: Target) -> None:
    names = [planhat.tag("cf-a"), planhat.tag("cf-b")]
    for name in names:
        field = {"name": name, "parent": "company", "type": "text", "isHidden": False}
        planhat.made.append(("customfields", planhat.client.create("customfields", field)["_id"]))
    company = planhat.client.create(
        "companies", {"name": planhat.tag("merge"), "custom": {names[0]: "a"}}
    )
    planhat.made.append(("companies", company["_id"]))

    planhat.client.update("companies", company["_id"], {"custom": {names[1]: "b"}})

    custom = planhat.client.get("companies", company["_id"])["custom"]
    assert (custom.get(names[0]), custom.get(names[1])) == ("a", "b")


def test_patch_is_not_a_method_planhat_offers(planhat: Target) -> None:
    company_id = planhat.client.get("companies", planhat.company())["_id"]

    response = planhat.raw.patch(f"/companies/{company_id}", json={"name": "Patched"})

    assert response.status_code == 405
    assert planhat.client.get("companies", company_id)["name"] != "Patched"
