"""The Planhat contract: what planhat-sync relies on, for every model and operation.

Runs against the sandbox always, and against the real API when PLANHAT_API_TOKEN and
PLANHAT_LIVE_TESTS=1 are set (records it makes are tagged ``phs-contract-`` and deleted).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from connectors.planhat.bulk import Outcome
from connectors.planhat.client import DEFAULT_BASE_URL, PlanhatClient
from connectors.planhat.errors import NotFoundError, PlanhatError
from connectors.planhat.models import MODELS, Operation
from tests.conftest import FAST_RETRY
from tests.planhat.samples import change, refs, sample

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
        "invoices", [{"extId": f"ext-{tag}", "cId": company, "amountDue": 42}]
    )
    assert (created.outcome, updated.outcome) == (Outcome.CREATED, Outcome.UPDATED)
    assert client.get("invoices", f"extid-ext-{tag}")["amountDue"] == 42


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
