"""What each Planhat tool says about itself: its title, description and annotations
(hints for the client, not security: the writes switch and ``confirm`` are)."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from connectors.planhat.models import ModelSpec, Operation

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=True)
ANNOTATIONS = {
    Operation.LIST: READ,
    Operation.GET: READ,
    Operation.CREATE: ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
    ),
    # An update overwrites values; sent again it changes nothing more.
    Operation.UPDATE: ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True
    ),
    Operation.DELETE: ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True
    ),
    # Keyed records (the schema asks for a keyable): a repeat updates, never duplicates.
    Operation.UPSERT: ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True
    ),
}
VERBS = {
    Operation.LIST: "List",
    Operation.GET: "Get one",
    Operation.CREATE: "Create one",
    Operation.UPDATE: "Update one",
    Operation.DELETE: "Delete one",
    Operation.UPSERT: "Bulk upsert (insert or update by key)",
}


def describe(operation: Operation, spec: ModelSpec) -> str:
    what = f"Planhat {spec.name} ({spec.singular} records)"
    text = {
        Operation.LIST: f"One page of {what}: limit/offset paging, sort, select"
        + (", filter by company" if spec.company_key else "")
        + ".",
        Operation.GET: f"One of the {what} by _id, extid- or srcid- reference.",
        Operation.CREATE: f"Create one of the {what}.",
        Operation.UPDATE: f"Partial update of one of the {what} (only the fields given).",
        Operation.DELETE: f"Delete one of the {what}; needs confirm equal to the id.",
        Operation.UPSERT: f"Insert or update many {what}, matched on "
        f"{', then '.join(spec.keyables)}.",
    }[operation]
    if operation in (Operation.CREATE, Operation.UPDATE, Operation.DELETE, Operation.UPSERT):
        text += " A dry run (the default) returns the planned change and the diff against what "
        text += "Planhat holds now, writing nothing; writing needs the server's writes on."
    return text
