"""A helpdesk ticket's Planhat company, found just before the ticket is sent.

A prepare hook on ``tickets`` (``connectors/source.py``), one per helpdesk source
(Zendesk, Intercom), for that source's records without a ``companyId``: an external id
the helpdesk holds for the ticket's company (Zendesk: the organization's
``external_id``; Intercom: the contact's companies' ``company_id``) when it is a Planhat
company's ``externalId``; else the e-mail's domain when a company's ``domains`` hold it
(the rule Planhat applies to endusers, which the survey linking leans on); else the
ticket waits (its company may be on its way) and then is a dead letter naming the domain
and the fix. The directory of companies (``_id``, ``externalId``, ``domains``) is read a
page a call, in the token's budget, and kept ``TTL`` seconds per connection and source.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.source import PrepareContext, Prepared

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

    def find(self, external_ids: Sequence[str], email: str) -> str | None:
        for external_id in external_ids:
            if external_id in self.by_external_id:
                return self.by_external_id[external_id]
        return self.by_domain.get(email.rpartition("@")[2].lower())


def read(context: PrepareContext, source: str) -> Companies:
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
            log.info("helpdesk.companies", source=source, companies=offset, calls=companies.calls)
            return companies


def hints(value: Any) -> list[str]:
    """A record's external-id hint: one string (Zendesk) or a list of them (Intercom)."""
    if isinstance(value, list):
        return [str(item) for item in value if item]
    return [str(value)] if value else []


Why = Callable[[str, Sequence[str], str], str]  # (ticket key, hints, domain) → the reason


class FindCompanies:
    """The hook for ``source``'s tickets, its hint in the queued field ``hint``; ``why``
    words the dead letter of a ticket no company matches (the fix is the helpdesk's)."""

    def __init__(
        self, source: str, hint: str, why: Why, ttl: float = TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.source, self.hint, self._why = source, hint, why
        self._ttl, self._clock = ttl, clock
        self._memo = f"{source}.companies"

    def needs_company(self, fields: Mapping[str, Any]) -> bool:
        return fields.get("source") == self.source and not fields.get("companyId")

    def __call__(
        self,
        context: PrepareContext,
        fields: Sequence[Mapping[str, Any]],
        records: Sequence[dict[str, Any]],
    ) -> Prepared:
        wanted = [i for i, record in enumerate(records) if self.needs_company(record)]
        if not wanted:
            return Prepared(records=list(records))
        cached = context.memo.get(self._memo)
        calls = 0
        if not isinstance(cached, Companies) or self._clock() - cached.loaded_at > self._ttl:
            cached = read(context, self.source)
            cached.loaded_at = self._clock()
            context.memo[self._memo] = cached
            calls = cached.calls
        out = [dict(record) for record in records]
        waiting: dict[int, str] = {}
        for index in wanted:
            email = str(out[index].get("email") or "")
            given = hints(fields[index].get(self.hint))
            found = cached.find(given, email)
            if found:
                out[index]["companyId"] = found
                continue
            key = str(out[index].get("sourceId", ""))
            waiting[index] = self._why(key, given, email.rpartition("@")[2])
        if waiting:  # a company may have been added since the directory was read
            context.memo.pop(self._memo, None)
        return Prepared(records=out, waiting=waiting, calls=calls)
