"""A chaos workload: three tenants, good changes and poison events, and what must come of it.

2,000 events over 500 records (companies, licenses, NPS) spread over three tenants, each
record changed four times, shuffled. ``poison`` adds events of every kind that can never
reach Planhat, all on the first tenant, each for a record of its own: each must end as
exactly one dead letter that names its cause, without holding up the good changes.
Used by tests/engine/test_e2e_chaos.py (correctness) and bench/bench_chaos.py (drain
times with and without poison).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from connectors.planhat.client import PlanhatClient
from tests.engine.harness import standard

TENANTS = ("tenant-a", "tenant-b", "tenant-c")
MODELS = ("companies", "licenses", "nps")
RECORDS = 500
VERSIONS = 4


def _record(i: int) -> tuple[str, str, str]:
    """Record ``i``: (tenant, model, key). Companies come first in each tenant's share."""
    tenant = TENANTS[i % len(TENANTS)]
    model = MODELS[(i // len(TENANTS)) % len(MODELS)]
    return tenant, model, f"{model[:2]}_{i}"


@cache
def _companies(tenant: str) -> list[int]:
    return [j for j in range(RECORDS) if _record(j)[:2] == (tenant, "companies")]


def _company_of(i: int) -> str:
    """A company record of the same tenant as record ``i``."""
    companies = _companies(_record(i)[0])
    return f"srcid-co_{companies[i % len(companies)]}"


def fields(i: int, version: int) -> dict[str, Any]:
    model = _record(i)[1]
    if model == "companies":
        return {"name": f"Company {i} v{version}", "phone": f"+1-555-{version:04}"}
    if model == "licenses":
        return {"companyId": _company_of(i), "_currency": "USD", "fromDate": "2026-01-01",
                "product": f"Plan v{version}", "mrr": version * 10}  # fmt: skip
    return {"cId": _company_of(i), "email": f"user{i}@example.com", "score": version % 11}


def good_events(seed: int) -> list[tuple[str, str, bytes]]:
    """2,000 (connection, event id, body), shuffled."""
    events = []
    for i in range(RECORDS):
        tenant, model, key = _record(i)
        for version in range(1, VERSIONS + 1):
            body = standard(model, key, version, fields(i, version))
            events.append((tenant, f"evt-{key}-{version}", body))
    random.Random(seed).shuffle(events)
    return events


def _raw(model: str, key: str, version: str, fields: str) -> bytes:
    # Written by hand: json.dumps refuses to write some of these (NaN is not JSON).
    return (
        f'{{"model": "{model}", "key": {{"sourceId": "{key}"}}, "version": {version}, '
        f'"fields": {fields}}}'
    ).encode()


@dataclass(frozen=True, slots=True)
class Poison:
    kind: str
    body: Callable[[str], bytes]  # from a record key of its own
    cause: str  # what its dead letter's reason must say


POISONS = (
    Poison("nan", lambda k: _raw("licenses", k, "1", '{"mrr": NaN}'), "NaN is not JSON"),
    Poison("infinity", lambda k: _raw("licenses", k, "1", '{"mrr": 1e999}'), "is too large"),
    Poison("huge version", lambda k: _raw("companies", k, "1" + "0" * 25, '{"name": "x"}'),
           "must fit in 64 bits"),
    Poison("long key", lambda k: _raw("companies", k + "x" * 300, "1", '{"name": "x"}'),
           "the key is"),
    Poison("lone surrogate", lambda k: _raw("companies", k, "1", '{"name": "\\ud800"}'),
           "half of a surrogate pair"),
    Poison("unknown model", lambda k: _raw("licences", k, "1", "{}"), "unknown Planhat model"),
    Poison("not json", lambda k: b'{"model": "companies", "key": ', "not JSON"),
)  # fmt: skip


def poison(count: int) -> list[tuple[str, str, bytes, Poison]]:
    """``count`` poison events on the first tenant, every kind in turn."""
    out = []
    for n in range(count):
        kind = POISONS[n % len(POISONS)]
        out.append((TENANTS[0], f"poison-{n}", kind.body(f"poison_{n}"), kind))
    return out


def mix(good: list[tuple[str, str, bytes]], bad: list[tuple[str, str, bytes, Poison]],
        seed: int) -> list[tuple[str, str, bytes]]:  # fmt: skip
    events = good + [(tenant, event_id, body) for tenant, event_id, body, _ in bad]
    random.Random(seed).shuffle(events)
    return events


def expected(tenant: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Model → key → newest fields, for ``tenant``."""
    out: dict[str, dict[str, dict[str, Any]]] = {model: {} for model in MODELS}
    for i in range(RECORDS):
        owner, model, key = _record(i)
        if owner == tenant:
            out[model][key] = fields(i, VERSIONS)
    return out


def tenant_done(url: str, tenant: str) -> bool:
    """Whether the tenant's Planhat holds every record at its newest version."""
    want = expected(tenant)
    with PlanhatClient("check", base_url=url) as planhat:
        for model, records in want.items():
            stored = {r.get("sourceId"): r for r in planhat.list(model)}
            for key, values in records.items():
                have = stored.get(key)
                if have is None:
                    return False
                for name, value in values.items():
                    if name not in ("companyId", "cId") and have.get(name) != value:
                        return False
    return True


def check_tenant(url: str, tenant: str) -> None:
    """Every record once, at its newest version, pointing at the right company."""
    want = expected(tenant)
    with PlanhatClient("check", base_url=url) as planhat:
        company_ids = {c["sourceId"]: c["_id"] for c in planhat.list("companies")}
        for model, records in want.items():
            stored = list(planhat.list(model))
            keys = [record.get("sourceId") for record in stored]
            assert len(keys) == len(set(keys)), f"{tenant}: duplicate {model}"
            assert set(keys) == set(records), f"{tenant}: {model} missing or extra"
            for record in stored:
                for name, value in records[record["sourceId"]].items():
                    if name in ("companyId", "cId"):
                        value = company_ids[value.removeprefix("srcid-")]
                    assert record.get(name) == value, (tenant, model, record["sourceId"], name)
