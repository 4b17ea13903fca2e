"""A Zendesk ticket's Planhat company, found just before the ticket is sent.

A prepare hook on ``tickets`` (``connectors/source.py``), for records that carry the
Zendesk hints and no ``companyId``: the organization's ``external_id`` when it is a Planhat
company's ``externalId``; else the requester's e-mail domain when a company's ``domains``
hold it (the rule Planhat applies to endusers, which the survey linking leans on); else the
ticket waits (its company may be on its way) and then is a dead letter naming the domain
and the fix. The directory of companies (``_id``, ``externalId``, ``domains``) is read a
page a call, in the token's budget, and kept ``TTL`` seconds per connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.source import PrepareContext, Prepared, PrepareHook
from connectors.zendesk.mapping import ORG_HINT

log = structlog.get_logger(__name__)

TTL = 300.0
PAGE = 5000
SELECT = ["_id", "externalId", "domains"]


@dataclass(slots=True)
class Companies:
    by_external_id: dict[str, str] = field(default_factory=dict)
    by_domain: dict[str, str] = field(default_factory=dict)
    loaded_at: float = 0.0
    calls: int = 0

    def find(self, external_id: str | None, email: str) -> str | None:
        if external_id and external_id in self.by_external_id:
            return self.by_external_id[external_id]
        return self.by_domain.get(email.rpartition("@")[2].lower())


def read(context: PrepareContext) -> Companies:
    companies = Companies()
    offset = 0
    while True:
        context.take_budget()
        page = context.planhat.list_page("companies", limit=PAGE, offset=offset, select=SELECT)
        companies.calls += 1
        for company in page:
            if company.get("externalId"):
                companies.by_external_id[str(company["externalId"])] = company["_id"]
            for domain in company.get("domains") or []:
                companies.by_domain.setdefault(str(domain).lower(), company["_id"])
        offset += len(page)
        if len(page) < PAGE:
            log.info("zendesk.companies", companies=offset, calls=companies.calls)
            return companies


def needs_company(fields: Mapping[str, Any]) -> bool:
    return fields.get("source") == "zendesk" and not fields.get("companyId")


class FindCompanies:
    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._clock = ttl, clock

    def __call__(
        self,
        context: PrepareContext,
        fields: Sequence[Mapping[str, Any]],
        records: Sequence[dict[str, Any]],
    ) -> Prepared:
        wanted = [i for i, record in enumerate(records) if needs_company(record)]
        if not wanted:
            return Prepared(records=list(records))
        cached = context.memo.get("zendesk.companies")
        calls = 0
        if not isinstance(cached, Companies) or self._clock() - cached.loaded_at > self._ttl:
            cached = read(context)
            cached.loaded_at = self._clock()
            context.memo["zendesk.companies"] = cached
            calls = cached.calls
        out = [dict(record) for record in records]
        waiting: dict[int, str] = {}
        for index in wanted:
            email = str(out[index].get("email") or "")
            hint = fields[index].get(ORG_HINT)
            found = cached.find(str(hint) if hint else None, email)
            if found:
                out[index]["companyId"] = found
                continue
            domain = email.rpartition("@")[2]
            org = (
                f"its organization's external_id {hint!r} is no company's externalId and "
                if hint
                else ""
            )
            waiting[index] = (
                f"zendesk ticket {out[index].get('sourceId', '')}: {org}no Planhat company has "
                f"the domain {domain}; add the domain to its company in Planhat (or set the "
                "organization's external_id to the company's externalId in Zendesk), then "
                "retry this dead letter"
            )
        if waiting:  # a company may have been added since the directory was read
            context.memo.pop("zendesk.companies", None)
        return Prepared(records=out, waiting=waiting, calls=calls)


PREPARE: Mapping[str, PrepareHook] = {"tickets": FindCompanies()}
