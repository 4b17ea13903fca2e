"""The Planhat model registry: one declarative entry per API model.

The client, the CLI and the sandbox all read this table, so a model's path, keys, required
fields and supported operations are written down exactly once. Facts come from
``shared/reference/planhat-api.md`` (Planhat's docs: https://docs.planhat.com).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import StrEnum


class Operation(StrEnum):
    LIST = "list"
    GET = "get"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UPSERT = "upsert"  # bulk upsert: PUT /<model> with an array


ALL_OPERATIONS = frozenset(Operation)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """What Planhat's API offers for one model."""

    name: str  # the API path segment, e.g. "licenses"
    singular: str  # "license": for messages
    # Planhat spells the external key and the company reference differently on some models:
    # invoices say ``extId`` and ``cId``; NPS records reference the company as ``cId``.
    external_key: str = "externalId"
    company_key: str | None = "companyId"
    # Each inner tuple is a group of alternatives: at least one field of every group must be
    # present to create a record (license: ``mrr`` or ``value``).
    required: tuple[tuple[str, ...], ...] = ()
    operations: frozenset[Operation] = ALL_OPERATIONS
    # The most records one list page holds, and the client's page size: 2,000, 5,000 for
    # companies (robocorp/robocorp-planhat src/planhat/client.py: "the maximum number of
    # objects allowed by the Planhat API (2000 for most, 5000 for companies)"; botpress).
    page_size: int = 2000
    # Whether Planhat knows ``sourceId`` and the external key for this model (and their
    # ``srcid-``/``extid-`` path forms). Custom fields have neither
    # (https://www.planhat.com/developers/api/custom-field).
    alt_keys: bool = True
    # A model addressed by a field of its own instead, and the field that scopes it:
    # custom fields by ``name`` within their ``parent`` model. A record's ``custom`` object
    # is keyed by field name (shared/reference/planhat-api.md), so a name is unique per
    # parent model: an inference, not stated by Planhat.
    name_key: tuple[str, str] | None = None

    def supports(self, operation: Operation) -> bool:
        return operation in self.operations

    @property
    def keyables(self) -> tuple[str, ...]:
        """Fields Planhat matches a record on, in its order: ``_id``, ``sourceId``, external."""
        if not self.alt_keys:
            return ("_id",)
        return ("_id", "sourceId", self.external_key)

    @property
    def key_fields(self) -> tuple[str, ...]:
        """Fields a change may key a record of this model by."""
        if self.name_key is not None:
            return (self.name_key[0],)
        return ("sourceId", self.external_key)

    def key_scope(self, key_field: str) -> str | None:
        """The field within which ``key_field`` is unique, if it is not unique per model:
        the company for an external id (support.planhat.com/en/articles/8146372), the parent
        model for a custom field's name."""
        if key_field == self.external_key and self.alt_keys:
            return self.company_key
        if self.name_key is not None and key_field == self.name_key[0]:
            return self.name_key[1]
        return None


def _req(*groups: str) -> tuple[tuple[str, ...], ...]:
    """``_req("name", "mrr|value")`` → ``(("name",), ("mrr", "value"))``."""
    return tuple(tuple(group.split("|")) for group in groups)


_SPECS = (
    ModelSpec(name="assets", singular="asset", required=_req("name", "companyId")),
    ModelSpec(name="campaigns", singular="campaign", required=_req("name", "companyId")),
    ModelSpec(name="churn", singular="churn record", required=_req("companyId")),
    ModelSpec(
        name="companies",
        singular="company",
        company_key=None,
        required=_req("name"),
        page_size=5000,
    ),
    ModelSpec(name="conversations", singular="conversation", required=_req("companyId")),
    # Custom fields: no bulk upsert (https://docs.planhat.com), no externalId/sourceId and
    # ``isHidden`` required (https://www.planhat.com/developers/api/custom-field).
    ModelSpec(
        name="customfields",
        singular="custom field",
        company_key=None,
        required=_req("name", "parent", "type", "isHidden"),
        operations=ALL_OPERATIONS - {Operation.UPSERT},
        alt_keys=False,
        name_key=("name", "parent"),
    ),
    ModelSpec(name="endusers", singular="enduser", required=_req("email", "companyId")),
    ModelSpec(
        name="invoices",
        singular="invoice",
        external_key="extId",
        company_key="cId",
        required=_req("currency", "cId"),
    ),
    ModelSpec(name="issues", singular="issue", company_key=None, required=_req("title")),
    ModelSpec(
        name="licenses",
        singular="license",
        required=_req("_currency", "companyId", "fromDate", "mrr|value"),
    ),
    ModelSpec(
        name="nps", singular="NPS record", company_key="cId", required=_req("email", "score")
    ),
    ModelSpec(name="opportunities", singular="opportunity", required=_req("companyId")),
    ModelSpec(name="objectives", singular="objective", required=_req("name", "companyId")),
    ModelSpec(name="projects", singular="project", required=_req("name", "companyId")),
    ModelSpec(
        name="sales",
        singular="sale",
        required=_req("_currency", "companyId", "salesDate", "value"),
    ),
    ModelSpec(name="tasks", singular="task", required=_req("mainType", "companyId")),
    # Tickets are bulk-only: upsert, list and delete.
    ModelSpec(
        name="tickets",
        singular="ticket",
        required=_req("companyId|companyExternalId|domains", "sourceId", "email"),
        operations=frozenset({Operation.LIST, Operation.DELETE, Operation.UPSERT}),
    ),
    # A time entry links to a company through companyId (not required);
    # https://www.planhat.com/developers/api/time-entry
    ModelSpec(name="timeentries", singular="time entry", required=_req("date", "hours")),
    ModelSpec(name="timesheets", singular="timesheet", company_key=None),
    ModelSpec(
        name="users",
        singular="user",
        company_key=None,
        required=_req("email", "nickName", "firstName", "lastName"),
    ),
    ModelSpec(name="workspaces", singular="workspace", required=_req("name", "companyId")),
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


class UnknownModelError(LookupError):
    def __init__(self, name: str) -> None:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(
            f"unknown Planhat model {name!r}.{hint} Known models: {', '.join(sorted(MODELS))}"
        )
        self.name = name


class UnsupportedOperationError(ValueError):
    def __init__(self, spec: ModelSpec, operation: Operation) -> None:
        offered = ", ".join(sorted(spec.operations))
        super().__init__(f"Planhat's API has no {operation} for {spec.name} (it offers: {offered})")


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(name) from None


def external_id_ref(value: str) -> str:
    """The path/reference form of an external id: ``extid-<externalId>``."""
    return f"extid-{value}"


def source_id_ref(value: str) -> str:
    """The path/reference form of a source id: ``srcid-<sourceId>``."""
    return f"srcid-{value}"
