"""Plain-HTTP helpers for the sandbox tests (tests/planhat/test_sandbox*.py).

They talk httpx straight to the sandbox's socket, so the tests pin the HTTP behaviour
itself, not what our client makes of it. The ``api`` fixture is in tests/planhat/conftest.py.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from connectors.planhat.sandbox import SandboxConfig
from connectors.planhat.sandbox.server import BackgroundSandbox

Record = dict[str, Any]
Start = Callable[[SandboxConfig], BackgroundSandbox]

TOKEN = "t"

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
MISSING_ID = "0" * 24
BULK_ANSWER_KEYS = {
    "created",
    "createdErrors",
    "insertsKeys",
    "updated",
    "updatedErrors",
    "updatesKeys",
    "nonupdates",
    "modified",
    "upsertedIds",
    "permissionErrors",
}


def client_for(sandbox: BackgroundSandbox, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {token}"})


def create(api: httpx.Client, model: str, record: Record) -> Record:
    response = api.post(f"/{model}", json=record)
    assert response.status_code == 200, response.text
    created: Record = response.json()
    return created


def company(api: httpx.Client, tag: str, **fields: Any) -> Record:
    """A company with externalId ``tag`` and sourceId ``src-<tag>``."""
    return create(
        api,
        "companies",
        {"name": f"Company {tag}", "externalId": tag, "sourceId": f"src-{tag}"} | fields,
    )


def company_without_source_id(api: httpx.Client, tag: str, **fields: Any) -> Record:
    """A company with externalId ``tag`` and no sourceId."""
    return create(api, "companies", {"name": f"Company {tag}", "externalId": tag} | fields)


def listing(api: httpx.Client, model: str, **params: Any) -> list[Record]:
    response = api.get(f"/{model}", params=params)
    assert response.status_code == 200, response.text
    records: list[Record] = response.json()
    return records


def license_(tag: str, company_ref: str, **fields: Any) -> Record:
    return {
        "sourceId": tag,
        "companyId": company_ref,
        "_currency": "USD",
        "fromDate": "2026-01-01",
        "mrr": 100,
        **fields,
    }


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()
