"""PlanhatClient against the sandbox where issue 13 checked the sandbox against Planhat:
custom fields keyed by name, unmatched keys, bulk answers, paging caps, rate limits."""

from __future__ import annotations

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
