"""A valid record of every Planhat model, and a change to make to it.

Shared by the contract suite (client, sandbox or the real API) and the CLI lifecycle tests.
Each record carries a sourceId and its model's external key, so it can be addressed both
ways; ``company`` is a reference such as ``extid-…`` to a company that exists.
"""

from __future__ import annotations

from typing import Any

from connectors.planhat.models import MODELS

Record = dict[str, Any]


def sample(model: str, tag: str, company: str) -> Record:
    """A record of ``model`` with every required field, keyed by ``tag``."""
    spec = MODELS[model]
    fields: dict[str, Record] = {
        "assets": {"name": f"Asset {tag}"},
        "campaigns": {"name": f"Campaign {tag}"},
        "churn": {"churnDate": "2026-10-01", "value": 120, "reasons": ["price"]},
        "companies": {"name": f"Company {tag}"},
        "conversations": {"type": "note", "description": f"Note {tag}"},
        "customfields": {
            "name": f"field {tag}",
            "parent": "company",
            "type": "text",
            "isHidden": False,
        },
        "endusers": {"email": f"{tag}@example.com", "firstName": "Ada"},
        "invoices": {
            "currency": "USD",
            "invoiceDate": 20_000,
            "dueDate": 20_030,
            "paidDate": 20_010,
            "amountTotal": 100,
            "status": "paid",
        },
        "issues": {"title": f"Issue {tag}"},
        "licenses": {"_currency": "USD", "fromDate": "2026-01-01", "mrr": 100, "product": "Pro"},
        "nps": {"email": f"{tag}@example.com", "score": 9},
        "opportunities": {"title": f"Deal {tag}", "salesStage": "open"},
        "objectives": {"name": f"Objective {tag}"},
        "projects": {"name": f"Project {tag}"},
        "sales": {"_currency": "USD", "salesDate": "2026-02-01", "value": 500},
        "tasks": {"mainType": "task", "action": f"Call {tag}"},
        "tickets": {"email": f"{tag}@example.com", "title": f"Ticket {tag}"},
        "timeentries": {"date": "2026-03-01", "hours": 1.5},
        "timesheets": {"name": f"Timesheet {tag}"},
        "users": {
            "email": f"{tag}@example.com",
            "nickName": tag,
            "firstName": "Grace",
            "lastName": "Hopper",
        },
        "workspaces": {"name": f"Workspace {tag}"},
    }
    record: Record = dict(fields[model])
    if spec.alt_keys:  # custom fields have neither (planhat.com/developers/api/custom-field)
        record = {"sourceId": f"src-{tag}", spec.external_key: f"ext-{tag}", **record}
    if spec.company_key:
        record[spec.company_key] = company
    return record


def refs(model: str, record: Record, record_id: str) -> list[str]:
    """Every way to address ``record`` in a path: ``_id``, ``extid-``, ``srcid-``."""
    spec = MODELS[model]
    if not spec.alt_keys:
        return [record_id]
    return [record_id, f"extid-{record[spec.external_key]}", f"srcid-{record['sourceId']}"]


def change(model: str) -> tuple[str, Any]:
    """A field of ``model`` and a new value for it."""
    changes: dict[str, tuple[str, Any]] = {
        "churn": ("value", 240),
        "conversations": ("description", "edited"),
        "endusers": ("firstName", "Grace"),
        "invoices": ("amountTotal", 250),
        "issues": ("title", "Renamed"),
        "licenses": ("mrr", 250),
        "nps": ("score", 3),
        "sales": ("value", 750),
        "tasks": ("action", "Email instead"),
        "tickets": ("title", "Renamed"),
        "timeentries": ("hours", 2.5),
        "opportunities": ("salesStage", "won"),
    }
    return changes.get(model, ("name", "Renamed"))
