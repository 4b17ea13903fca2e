"""One tool per operation of every Planhat model, generated from the model registry.

``list_<model>``, ``get_<model>``, ``create_<model>``, ``update_<model>``,
``delete_<model>``, ``upsert_<model>`` for each model that offers the operation
(``ModelSpec.operations``): the registry's path name is the tool's noun, so a model added
there is a tool here. Writes are dry runs unless ``dry_run`` is false *and* the server was
started with writes on; a dry run reads what Planhat holds now (one GET per record, none
for a create) and returns the diff, writing nothing. A delete also needs ``confirm``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import structlog
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, WithJsonSchema

from connectors.planhat.bulk import RecordResult, count_outcomes
from connectors.planhat.client import PlanhatClient
from connectors.planhat.errors import NotFoundError
from connectors.planhat.models import MODELS, ModelSpec, Operation
from worker.mcp_server.context import ToolContext, tool_errors
from worker.mcp_server.diff import diff, same
from worker.mcp_server.outputs import (
    BulkAnswer,
    BulkItem,
    FieldChange,
    RecordAnswer,
    RecordPage,
    WriteAnswer,
)
from worker.mcp_server.planhat_meta import ANNOTATIONS, VERBS, describe
from worker.mcp_server.schemas import (
    id_description,
    key_of,
    missing_required,
    record_schema,
    reference,
)

log = structlog.get_logger(__name__)

DEFAULT_PAGE = 100  # records a list call returns unless asked: enough to read, not a dump
DRY_RUN_READS = 25  # records of a bulk upsert a dry run reads back for their diff
MAX_UPSERT = 5000  # one bulk call's worth (Planhat: 5,000 items a request)

Connection = Annotated[
    str, Field(description="The connection (Planhat tenant) to use; 'default' unless told.")
]
DryRun = Annotated[
    bool,
    Field(description="true (the default): return the planned change and write nothing."),
]


def tool_name(operation: Operation, spec: ModelSpec) -> str:
    return f"{operation.value}_{spec.name}"


def operation_count() -> int:
    """Every (model, operation) the registry offers: one tool each."""
    return sum(len(spec.operations) for spec in MODELS.values())


def add_planhat_tools(server: MCPServer, ctx: ToolContext) -> list[str]:
    names = []
    for spec in MODELS.values():
        for operation in Operation:
            if not spec.supports(operation):
                continue
            params, call, returns = _BUILDERS[operation](ctx, spec)
            name = tool_name(operation, spec)
            server.add_tool(
                _signed(name, call, params, returns),
                name=name,
                title=f"{VERBS[operation]} Planhat {spec.singular}",
                description=describe(operation, spec),
                annotations=ANNOTATIONS[operation],
            )
            names.append(name)
    return names


def _signed(
    name: str, call: Callable[..., Any], params: list[inspect.Parameter], returns: type
) -> Callable[..., Any]:
    """``call`` with the signature the SDK reads the input and output schemas from."""

    def tool(**arguments: Any) -> Any:
        log.info("mcp.call", tool=name, dry_run=arguments.get("dry_run"))
        with tool_errors(name):
            return call(**arguments)

    tool.__name__ = name
    tool.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    return tool


def _param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


Built = tuple[list[inspect.Parameter], Callable[..., Any], type]


def _list(ctx: ToolContext, spec: ModelSpec) -> Built:
    def call(
        connection: str,
        limit: int,
        offset: int,
        sort: str | None,
        select: list[str] | None,
        company_ids: list[str] | None = None,
    ) -> RecordPage:
        with ctx.planhat(connection) as planhat:
            records = planhat.list_page(
                spec.name,
                limit=limit,
                offset=offset,
                sort=sort,
                select=select,
                company_ids=company_ids,
            )
        full = len(records) >= min(limit, spec.page_size)
        return RecordPage(
            model=spec.name,
            offset=offset,
            limit=limit,
            count=len(records),
            next_offset=offset + len(records) if full else None,
            records=records,
        )

    limit = Annotated[
        int, Field(ge=1, le=spec.page_size, description="Records per page (Planhat's cap).")
    ]
    params = [
        _param("connection", Connection, "default"),
        _param("limit", limit, DEFAULT_PAGE),
        _param("offset", Annotated[int, Field(ge=0, description="Records to skip.")], 0),
        _param("sort", Annotated[str | None, Field(description="field, or -field.")], None),
        _param("select", Annotated[list[str] | None, Field(description="Only these.")], None),
    ]
    if spec.company_key:
        companies = Annotated[
            list[str] | None, Field(description="Only records of these company _ids.")
        ]
        params.append(_param("company_ids", companies, None))
    return params, call, RecordPage


def _get(ctx: ToolContext, spec: ModelSpec) -> Built:
    def call(connection: str, id: str) -> RecordAnswer:
        with ctx.planhat(connection) as planhat:
            record = planhat.get(spec.name, id)
        return RecordAnswer(model=spec.name, id=record.get("_id"), record=record)

    params = [
        _param("id", Annotated[str, Field(description=id_description(spec))]),
        _param("connection", Connection, "default"),
    ]
    return params, call, RecordAnswer


def _create(ctx: ToolContext, spec: ModelSpec) -> Built:
    def call(connection: str, data: dict[str, Any], dry_run: bool) -> WriteAnswer:
        missing = missing_required(spec, data)
        if missing:
            raise ToolError(f"a {spec.singular} needs {', '.join(missing)}: add them and retry")
        changes = diff({}, data)
        if dry_run:
            text = "planned: nothing written"
            return _answer(spec, "create", None, dry_run, changes, [], None, text)
        ctx.require_writes()
        with ctx.planhat(connection) as planhat:
            record = planhat.create(spec.name, data)
        log.info("mcp.write", model=spec.name, operation="create", id=record.get("_id"))
        return _answer(spec, "create", None, dry_run, changes, [], record, "created")

    schema = record_schema(spec, creating=True)
    data = Annotated[dict[str, Any], WithJsonSchema(schema)]
    params = [
        _param("data", data),
        _param("dry_run", DryRun, True),
        _param("connection", Connection, "default"),
    ]
    return params, call, WriteAnswer


def _update(ctx: ToolContext, spec: ModelSpec) -> Built:
    def call(connection: str, id: str, data: dict[str, Any], dry_run: bool) -> WriteAnswer:
        if not data:
            raise ToolError("data is empty: give the fields to change")
        if dry_run:
            with ctx.planhat(connection) as planhat:
                current = planhat.get(spec.name, id)  # the one read a dry run makes
            changes, unchanged = diff(current, data), same(current, data)
            text = f"planned: {len(changes)} field(s) would change; nothing written"
            return _answer(spec, "update", id, dry_run, changes, unchanged, current, text)
        ctx.require_writes()
        with ctx.planhat(connection) as planhat:
            record = planhat.update(spec.name, id, data)  # exactly one call: the PUT
        log.info("mcp.write", model=spec.name, operation="update", id=record.get("_id"))
        changes = [FieldChange(field=name, after=value, new=False) for name, value in data.items()]
        return _answer(spec, "update", id, dry_run, changes, [], record, "updated")

    schema = record_schema(spec, creating=False)
    data = Annotated[dict[str, Any], WithJsonSchema(schema)]
    params = [
        _param("id", Annotated[str, Field(description=id_description(spec))]),
        _param("data", data),
        _param("dry_run", DryRun, True),
        _param("connection", Connection, "default"),
    ]
    return params, call, WriteAnswer


def _delete(ctx: ToolContext, spec: ModelSpec) -> Built:
    def call(connection: str, id: str, dry_run: bool, confirm: str | None) -> WriteAnswer:
        if dry_run:
            current = None
            if spec.supports(Operation.GET):
                with ctx.planhat(connection) as planhat:
                    current = planhat.get(spec.name, id)
            text = f"planned: {spec.singular} {id} would be deleted; nothing written"
            return _answer(spec, "delete", id, dry_run, [], [], current, text)
        ctx.require_writes()
        if confirm != id:
            raise ToolError(
                f"refused: deleting {spec.singular} {id!r} cannot be undone and needs "
                f"confirm={id!r} (the same id). Ask the user to confirm this deletion, then "
                f"call again with confirm set."
            )
        with ctx.planhat(connection) as planhat:
            answer = planhat.delete(spec.name, id)
        log.info("mcp.write", model=spec.name, operation="delete", id=id)
        return _answer(spec, "delete", id, dry_run, [], [], answer, "deleted")

    confirm = Annotated[
        str | None, Field(description="The id again, to confirm the deletion (needed to write).")
    ]
    params = [
        _param("id", Annotated[str, Field(description=id_description(spec))]),
        _param("dry_run", DryRun, True),
        _param("confirm", confirm, None),
        _param("connection", Connection, "default"),
    ]
    return params, call, WriteAnswer


def _upsert(ctx: ToolContext, spec: ModelSpec) -> Built:
    def call(connection: str, records: list[dict[str, Any]], dry_run: bool) -> BulkAnswer:
        problems = [
            f"record {n}: no keyable ({', '.join(spec.keyables)})"
            for n, record in enumerate(records)
            if key_of(spec, record) is None
        ]
        if problems:
            raise ToolError("; ".join(problems[:5]) + ": every record needs a key")
        if dry_run:
            with ctx.planhat(connection) as planhat:
                items = [_planned(planhat, spec, n, record) for n, record in enumerate(records)]
            counts = {"planned": len(items)}
            return BulkAnswer(
                model=spec.name,
                dry_run=True,
                written=False,
                counts=counts,
                items=items,
                message="planned: nothing written",
            )
        ctx.require_writes()
        with ctx.planhat(connection) as planhat:
            results = planhat.bulk_upsert(spec.name, records)
        log.info("mcp.write", model=spec.name, operation="upsert", records=len(records))
        return BulkAnswer(
            model=spec.name,
            dry_run=False,
            written=True,
            counts=count_outcomes(results),
            items=[_item(spec, records[result.index], result) for result in results],
            message=f"{len(records)} record(s) sent",
        )

    schema = {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_UPSERT,
        "items": record_schema(spec, creating=True, keyed=True),
    }
    records = Annotated[list[dict[str, Any]], WithJsonSchema(schema)]
    params = [
        _param("records", records),
        _param("dry_run", DryRun, True),
        _param("connection", Connection, "default"),
    ]
    return params, call, BulkAnswer


_BUILDERS: dict[Operation, Callable[[ToolContext, ModelSpec], Built]] = {
    Operation.LIST: _list,
    Operation.GET: _get,
    Operation.CREATE: _create,
    Operation.UPDATE: _update,
    Operation.DELETE: _delete,
    Operation.UPSERT: _upsert,
}


def _planned(
    planhat: PlanhatClient, spec: ModelSpec, index: int, record: dict[str, Any]
) -> BulkItem:
    key = key_of(spec, record)
    assert key is not None
    label = f"{key[0]}={key[1]}"
    if index >= DRY_RUN_READS or not spec.supports(Operation.GET):
        why = "not read back" if spec.supports(Operation.GET) else "cannot be read one by one"
        return BulkItem(index=index, key=label, outcome="planned", message=f"{why}: no diff")
    try:
        current = planhat.get(spec.name, reference(spec, key))
    except NotFoundError:
        changes = diff({}, record)
        return BulkItem(index=index, key=label, outcome="would create", changes=changes)
    changes = diff(current, record)
    outcome = "would update" if changes else "would be unchanged"
    return BulkItem(index=index, key=label, outcome=outcome, id=current.get("_id"), changes=changes)


def _item(spec: ModelSpec, record: Mapping[str, Any], result: RecordResult) -> BulkItem:
    key = key_of(spec, record)
    return BulkItem(
        index=result.index,
        key=f"{key[0]}={key[1]}" if key else None,
        outcome=str(result.outcome),
        id=result.id,
        message=result.message,
    )


def _answer(
    spec: ModelSpec,
    operation: str,
    target: str | None,
    dry_run: bool,
    changes: list[FieldChange],
    unchanged: list[str],
    record: dict[str, Any] | None,
    message: str,
) -> WriteAnswer:
    return WriteAnswer(
        model=spec.name,
        operation=operation,
        target=target,
        dry_run=dry_run,
        written=not dry_run,
        changes=changes,
        unchanged=unchanged,
        record=record,
        message=message,
    )
