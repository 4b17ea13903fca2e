"""The Planhat contract: what planhat-sync relies on, for every model and operation.

Runs against the sandbox always, and against the real API when PLANHAT_API_TOKEN and
PLANHAT_LIVE_TESTS=1 are set (records it makes are tagged ``phs-contract-`` and deleted).
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

import pytest

from connectors.planhat.bulk import Outcome
from connectors.planhat.client import DEFAULT_BASE_URL, PlanhatClient
from connectors.planhat.errors import NotFoundError, PlanhatError
from connectors.planhat.models import MODELS, Operation
from tests.conftest import FAST_RETRY
from tests.planhat.samples import change, sample

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


@dataclass
class Target:
    client: PlanhatClient
    run: str  # unique per test run, so live records never collide
    made: list[tuple[str, str]] = field(default_factory=list)  # (model, _id) to clean up
    _company: str | None = None

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


def _live_client() -> PlanhatClient:
    if os.environ.get("PLANHAT_LIVE_TESTS") != "1" or not os.environ.get("PLANHAT_API_TOKEN"):
        pytest.skip("live contract: set PLANHAT_API_TOKEN and PLANHAT_LIVE_TESTS=1 to run it")
    return PlanhatClient(
        os.environ["PLANHAT_API_TOKEN"],
        base_url=os.environ.get("PLANHAT_BASE_URL", DEFAULT_BASE_URL),
    )


@pytest.fixture(params=["sandbox", pytest.param("live", marks=pytest.mark.live)])
def planhat(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "live":
        client = _live_client()
    else:
        sandbox = request.getfixturevalue("sandbox")
        client = PlanhatClient("contract", base_url=sandbox.url, retry=FAST_RETRY)
    target = Target(client=client, run=uuid.uuid4().hex[:8])
    try:
        yield target
    finally:
        target.cleanup()
        client.close()


def _ids(records: list[dict[str, Any]]) -> set[str]:
    return {record["_id"] for record in records}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_operation_of_the_model_works(planhat: Target, model: str) -> None:
    spec = MODELS[model]
    client = planhat.client
    company = planhat.company() if spec.company_key else ""
    first = sample(model, planhat.tag(f"{model}-1"), company)
    source_ref = f"srcid-{first['sourceId']}"

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

    # get by _id, extid- and srcid-
    if spec.supports(Operation.GET):
        ext_ref = f"extid-{first[spec.external_key]}"
        for ref in (record_id, ext_ref, source_ref):
            got = client.get(model, ref)
            assert got["_id"] == record_id, ref
            assert got["sourceId"] == first["sourceId"]

    # update
    name, value = change(model)
    if spec.supports(Operation.UPDATE):
        assert client.update(model, source_ref, {name: value})[name] == value
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
