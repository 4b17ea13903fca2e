"""The MCP server through the SDK's own client, in process, against the Planhat sandbox:
which tools there are, their schemas and annotations, and one call of each kind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from mcp.client import Client
from mcp.types import Tool
from sqlalchemy import Engine

from connectors.planhat.client import PlanhatClient
from connectors.planhat.models import MODELS, Operation
from connectors.planhat.sandbox.server import BackgroundSandbox
from state.db import make_engine, migrate
from tests.mcp.tools import (
    PLANHAT_TOKEN,
    STRIPE_SECRET,
    call,
    planhat_calls,
    server_for,
    with_client,
)
from worker.mcp_server.context import WRITES_OFF
from worker.mcp_server.planhat_tools import operation_count
from worker.mcp_server.sync_tools import SYNC_TOOLS

# Measured on this registry (connectors/planhat/models.py): 21 models; 122 operations.
REGISTRY_OPERATIONS = 122
SYNC_TOOL_COUNT = 7


@pytest.fixture(scope="module")
def listed(
    shared_sandbox: BackgroundSandbox, tmp_path_factory: pytest.TempPathFactory
) -> list[Tool]:
    """The tools as the SDK's client lists them (their list depends on no state: listed
    once for this file's tests)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('listed')}/state.db"
    migrate(url)
    engine = make_engine(url)

    async def use(client: Client) -> list[Tool]:
        return (await client.list_tools()).tools

    try:
        return with_client(server_for(engine, shared_sandbox), use)
    finally:
        engine.dispose()


@pytest.fixture
def planhat(sandbox: BackgroundSandbox) -> Iterator[PlanhatClient]:
    with PlanhatClient(PLANHAT_TOKEN, base_url=sandbox.url) as client:
        yield client


def test_there_is_a_tool_per_registry_operation_and_one_per_sync_task(
    listed: list[Tool],
) -> None:
    tools = listed

    names = {tool.name for tool in tools}
    expected = {
        f"{operation.value}_{spec.name}"
        for spec in MODELS.values()
        for operation in Operation
        if spec.supports(operation)
    }
    assert operation_count() == len(expected) == REGISTRY_OPERATIONS
    assert len(SYNC_TOOLS) == SYNC_TOOL_COUNT
    assert len(tools) == REGISTRY_OPERATIONS + SYNC_TOOL_COUNT == 129
    assert names == expected | set(SYNC_TOOLS)
    # Tickets are bulk-only: no get, create or update tool for them.
    assert {"list_tickets", "upsert_tickets", "delete_tickets"} <= names
    assert not {"get_tickets", "create_tickets", "update_tickets"} & names
    assert "upsert_customfields" not in names  # custom fields have no bulk upsert


def test_every_input_and_output_schema_is_valid_json_schema(
    listed: list[Tool],
) -> None:
    tools = listed

    for tool in tools:
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        assert tool.output_schema is not None, f"{tool.name} has no typed output"
        jsonschema.Draft202012Validator.check_schema(tool.output_schema)


def test_input_schemas_carry_the_registry_s_required_fields_and_keyables(
    listed: list[Tool],
) -> None:
    tools = {tool.name: tool for tool in listed}

    license_ = tools["create_licenses"].input_schema["properties"]["data"]
    validator = jsonschema.Draft202012Validator(license_)
    complete = {"_currency": "USD", "companyId": "c1", "fromDate": "2026-01-01", "mrr": 5}
    assert validator.is_valid(complete)
    assert validator.is_valid({**{k: v for k, v in complete.items() if k != "mrr"}, "value": 60})
    assert not validator.is_valid({k: v for k, v in complete.items() if k != "mrr"})
    assert not validator.is_valid({k: v for k, v in complete.items() if k != "companyId"})

    invoices = tools["upsert_invoices"].input_schema["properties"]["records"]
    item = jsonschema.Draft202012Validator(invoices["items"])
    assert item.is_valid({"currency": "USD", "cId": "c1", "extId": "in_1", "status": "paid"})
    assert not item.is_valid({"currency": "USD", "cId": "c1"})  # no keyable
    assert not item.is_valid({"currency": "USD", "cId": "c1", "extId": "x", "status": "lost"})
    assert invoices["maxItems"] == 5000
    listing = tools["list_companies"].input_schema["properties"]["limit"]
    assert listing["maximum"] == 5000  # the companies page cap; 2,000 for the others
    assert tools["list_licenses"].input_schema["properties"]["limit"]["maximum"] == 2000


def test_reads_are_read_only_and_writes_say_what_they_destroy(
    listed: list[Tool],
) -> None:
    tools = {tool.name: tool for tool in listed}

    def hints(name: str) -> tuple[bool | None, bool | None, bool | None]:
        notes = tools[name].annotations
        assert notes is not None
        return notes.read_only_hint, notes.destructive_hint, notes.idempotent_hint

    for name in ("list_companies", "get_companies", "get_sync_status", "get_story",
                 "list_dead_letters"):  # fmt: skip
        assert hints(name)[0] is True, name
    assert hints("create_tasks") == (False, False, False)
    assert hints("update_tasks") == (False, True, True)
    assert hints("delete_tasks") == (False, True, True)
    assert hints("upsert_tasks") == (False, True, True)
    assert hints("drop_dead_letter") == (False, True, True)
    assert hints("retry_dead_letter") == (False, False, False)


class Checked:
    """Calls tools of one server, checking each answer against the tool's output schema."""

    def __init__(self, engine: Engine, sandbox: BackgroundSandbox) -> None:
        self.server = server_for(engine, sandbox, writes=True)

        async def schemas(client: Client) -> dict[str, Any]:
            return {t.name: t.output_schema for t in (await client.list_tools()).tools}

        self.schemas = with_client(self.server, schemas)

    def __call__(self, tool: str, arguments: dict[str, Any]) -> Any:
        result = call(self.server, tool, arguments)
        assert not result.is_error, result.content
        assert result.structured_content is not None
        jsonschema.validate(result.structured_content, self.schemas[tool])
        return result.structured_content


def test_a_call_of_each_kind_returns_output_that_validates(
    sqlite_engine: Engine, sandbox: BackgroundSandbox, planhat: PlanhatClient
) -> None:
    checked = Checked(sqlite_engine, sandbox)
    company = {"name": "Acme", "sourceId": "acme", "externalId": "ext-acme"}

    created = checked("create_companies", {"data": company, "dry_run": False})
    page = checked("list_companies", {"limit": 10, "sort": "name"})
    got = checked("get_companies", {"id": "srcid-acme"})
    by_ext = checked("get_companies", {"id": "extid-ext-acme"})
    records = [{"sourceId": "acme", "name": "Acme Inc"}, {"sourceId": "new-co", "name": "New Co"}]
    upsert = checked("upsert_companies", {"records": records})
    delete = checked("delete_companies", {"id": "srcid-acme"})
    status = checked("get_sync_status", {})
    letters = checked("list_dead_letters", {})
    story = checked("get_story", {"query": "evt_nothing"})

    assert created["written"] is True
    assert created["record"]["name"] == "Acme"
    planhat_id = created["record"]["_id"]
    assert (page["count"], page["next_offset"], page["records"][0]["_id"]) == (1, None, planhat_id)
    assert got["id"] == by_ext["id"] == planhat_id
    assert [item["outcome"] for item in upsert["items"]] == ["would update", "would create"]
    assert upsert["items"][0]["changes"] == [
        {"field": "name", "before": "Acme", "after": "Acme Inc", "new": False}
    ]
    assert (delete["written"], delete["record"]["_id"]) == (False, planhat_id)
    assert planhat.get("companies", planhat_id)["name"] == "Acme"  # dry runs wrote nothing
    assert status["problems"] == []
    assert letters == {"letters": [], "count": 0}
    assert story["stories"] == []


def test_a_record_missing_a_required_field_is_refused_before_planhat_is_called(
    sqlite_engine: Engine, sandbox: BackgroundSandbox
) -> None:
    data = {"_currency": "USD", "companyId": "c1", "fromDate": "2026-01-01"}

    result = call(server_for(sqlite_engine, sandbox, writes=True), "create_licenses",
                  {"data": data, "dry_run": False})  # fmt: skip

    assert result.is_error
    assert "a license needs mrr or value: add them and retry" in str(result.content)
    assert planhat_calls(sandbox) == {}


def test_with_writes_off_a_write_is_refused_and_says_how_to_turn_them_on(
    sqlite_engine: Engine, sandbox: BackgroundSandbox
) -> None:
    result = call(server_for(sqlite_engine, sandbox), "update_companies",
                  {"id": "srcid-acme", "data": {"name": "X"}, "dry_run": False})  # fmt: skip

    assert result.is_error
    assert WRITES_OFF in str(result.content)
    assert "--allow-writes" in WRITES_OFF
    assert "PLANHAT_SYNC_MCP_WRITES=1" in WRITES_OFF
    assert planhat_calls(sandbox) == {}


def test_no_tool_output_carries_the_planhat_token_or_a_webhook_secret(
    sqlite_engine: Engine, sandbox: BackgroundSandbox
) -> None:
    server = server_for(sqlite_engine, sandbox, writes=True)
    answers = [
        call(
            server, "create_companies", {"data": {"name": "A", "sourceId": "a"}, "dry_run": False}
        ),
        call(server, "get_companies", {"id": "srcid-nothing"}),  # an error, with Planhat's text
        call(server, "get_sync_status", {}),
        call(server, "list_companies", {}),
        call(server, "send_change", {"source": "stripe", "body": {"id": "evt_1"}}),
        call(server, "list_dead_letters", {}),
    ]

    for answer in answers:
        assert PLANHAT_TOKEN not in answer.model_dump_json()
        assert STRIPE_SECRET not in answer.model_dump_json()
    assert answers[1].is_error
    assert "not found in Planhat" in str(answers[1].content)
