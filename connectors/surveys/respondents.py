"""Survey respondents → the enduser and company their NPS belongs on, just before it is sent.

An NPS record from a survey names its respondent by e-mail only (connectors/surveys.py).
Planhat links nothing by e-mail in a bulk upsert, and an enduser created without a company
is silently dropped when no company has its domain (planhat-api.md), so planhat-sync
links the record itself, from a directory of the tenant: endusers by e-mail, companies by
domain (both read with ``select``, a page a call, cached per connection). It is a prepare
hook (``connectors/source.py``) the survey sources declare for ``nps``: the flush runs it
on every NPS batch just before sending, whatever source queued the records.

- an enduser with that e-mail exists: the NPS gets its ``euId`` and its company's ``cId``;
- else the company whose ``domains`` hold the e-mail's domain, else the connection's
  fallback company, gets a new enduser (one bulk upsert for the batch), then the NPS;
- else the NPS is a dead letter that says which e-mail and domain found no company.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.planhat.client import PlanhatClient
from connectors.source import PrepareContext, Prepared, PrepareHook
from connectors.surveys import FALLBACK_COMPANY

log = structlog.get_logger(__name__)

# The survey sources: each has a ``fallback_company`` option.
FALLBACK_SOURCES = ("typeform", "surveymonkey")
TTL = 300.0  # seconds a directory serves before it is read again
FRESH = 30.0  # a directory younger than this is not re-read for an unknown e-mail
PAGE = 2000


@dataclass(slots=True)
class Directory:
    endusers: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # e-mail → ids
    companies: dict[str, str] = field(default_factory=dict)  # domain → company _id
    loaded_at: float = 0.0


# Takes one call's worth of the connection's rate budget, or raises ``NoBudget``.
Budget = Callable[[], None]


class Directories:
    """Each connection's directory, cached for ``ttl`` seconds (one per process)."""

    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, Directory] = {}
        self._lock = threading.Lock()

    def get(
        self,
        connection: str,
        planhat: PlanhatClient,
        budget: Budget,
        emails: Sequence[str],
        *,
        refresh: bool = False,
    ) -> Directory:
        """The connection's directory; read again when older than the TTL, when it does not
        know an e-mail and is older than ``FRESH``, or when ``refresh``."""
        with self._lock:
            directory = self._cache.get(connection)
        age = self._clock() - directory.loaded_at if directory else None
        unknown = directory is not None and any(e not in directory.endusers for e in emails)
        stale = age is None or age > self._ttl or (unknown and age > FRESH)
        if directory is None or stale or refresh:
            directory = _read(planhat, budget)
            directory.loaded_at = self._clock()
            with self._lock:
                self._cache[connection] = directory
        return directory


def _pages(planhat: PlanhatClient, budget: Budget, model: str, select: list[str]) -> list[Any]:
    records: list[Any] = []
    while True:
        budget()
        page = planhat.list_page(model, limit=PAGE, offset=len(records), select=select)
        records.extend(page)
        if len(page) < PAGE:
            return records


def _read(planhat: PlanhatClient, budget: Budget) -> Directory:
    directory = Directory()
    for company in _pages(planhat, budget, "companies", ["_id", "domains"]):
        for domain in company.get("domains") or []:
            directory.companies.setdefault(str(domain).lower().strip(), company["_id"])
    for enduser in _pages(planhat, budget, "endusers", ["_id", "email", "companyId"]):
        if enduser.get("email"):
            email = str(enduser["email"]).lower().strip()
            directory.endusers.setdefault(email, (enduser["_id"], enduser.get("companyId")))
    log.info("respondents.directory", companies=len(directory.companies),
             endusers=len(directory.endusers))  # fmt: skip
    return directory


def needs_linking(model: str, fields: dict[str, Any]) -> bool:
    """An NPS record that names its respondent by e-mail and no company."""
    return model == "nps" and bool(fields.get("email")) and not fields.get("cId")


@dataclass(frozen=True, slots=True)
class Linked:
    records: list[dict[str, Any]]  # to send, in the order given
    refused: dict[int, str]  # index → why it cannot be linked (a dead letter)
    unknown: dict[int, str]  # index → no company has its domain (yet): it waits
    created: int  # endusers created


def _company_for(directory: Directory, email: str, fallback: str | None) -> str | None:
    return directory.companies.get(email.rpartition("@")[2]) or fallback


def unresolved(
    directory: Directory, records: Sequence[dict[str, Any]], fallbacks: Sequence[str | None]
) -> bool:
    """Whether some record has neither an enduser nor a company in ``directory``."""
    for record, fallback in zip(records, fallbacks, strict=True):
        if needs_linking("nps", record):
            email = str(record["email"]).lower().strip()
            known = directory.endusers.get(email)
            if not (known and known[1]) and not _company_for(directory, email, fallback):
                return True
    return False


def link(
    directory: Directory,
    planhat: PlanhatClient,
    budget: Budget,
    records: Sequence[dict[str, Any]],
    fallbacks: Sequence[str | None],
) -> Linked:
    """Give each NPS record that needs it its ``euId`` and ``cId``, creating the endusers
    that are missing first (one bulk upsert). ``fallbacks``: each record's fallback
    company (its ``~fallbackCompany`` hint), if any."""
    refused: dict[int, str] = {}
    unknown: dict[int, str] = {}
    to_create: dict[str, str] = {}  # e-mail → company reference
    for index, record in enumerate(records):
        if not needs_linking("nps", record):
            continue
        email = str(record["email"]).lower().strip()
        known = directory.endusers.get(email)
        if known and known[1]:
            continue
        domain = email.rpartition("@")[2]
        company = _company_for(directory, email, fallbacks[index])
        if company:
            to_create.setdefault(email, company)
        else:
            source = record.get("source")
            remedy = (
                f"set {source}.fallback_company"
                if source in FALLBACK_SOURCES
                else "send the record with its cId"
            )
            unknown[index] = (
                f"no Planhat enduser has the e-mail {email} and no company has the domain "
                f"{domain}; add the domain to its company in Planhat, or {remedy}, then "
                "retry this dead letter"
            )
    created = 0
    if to_create:
        budget()
        emails = list(to_create)
        results = planhat.bulk_upsert(
            "endusers",
            [
                {"sourceId": f"respondent-{e}", "email": e, "companyId": to_create[e]}
                for e in emails
            ],
        )
        for email, result in zip(emails, results, strict=True):
            if result.ok and result.id:
                directory.endusers[email] = (result.id, to_create[email])
                created += 1
            else:
                said = result.message or result.outcome
                why = f"Planhat did not create the enduser {email}: {said}"
                for index, record in enumerate(records):
                    same = str(record.get("email", "")).lower().strip() == email
                    if same and needs_linking("nps", record):
                        refused[index] = why
    linked = []
    for index, record in enumerate(records):
        if index not in refused and index not in unknown and needs_linking("nps", record):
            enduser_id, company = directory.endusers[str(record["email"]).lower().strip()]
            record = {**record, "euId": enduser_id, "cId": company}
        linked.append(dict(record))
    return Linked(records=linked, refused=refused, unknown=unknown, created=created)


class LinkRespondents:
    """The prepare hook: link a batch's NPS records before they are sent. The directory is
    kept in the context's memo (one per engine and connection)."""

    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock

    def __call__(
        self,
        context: PrepareContext,
        fields: Sequence[Mapping[str, Any]],
        records: Sequence[dict[str, Any]],
    ) -> Prepared:
        emails = [str(r["email"]).lower().strip() for r in records if needs_linking("nps", r)]
        if not emails:
            return Prepared(records=list(records))
        directories = context.memo.setdefault("respondents", Directories(self._ttl, self._clock))
        started = self._clock()
        directory = directories.get(
            context.connection, context.planhat, context.take_budget, emails
        )
        fallbacks = [item.get(FALLBACK_COMPANY) for item in fields]
        if directory.loaded_at < started and unresolved(directory, records, fallbacks):
            # Never set a record aside on a directory read before its company was written.
            directory = directories.get(
                context.connection, context.planhat, context.take_budget, emails, refresh=True
            )
        linked = link(directory, context.planhat, context.take_budget, records, fallbacks)
        return Prepared(
            records=linked.records,
            refused=linked.refused,
            waiting=linked.unknown,
            calls=1 if linked.created else 0,
        )


PREPARE: Mapping[str, PrepareHook] = {"nps": LinkRespondents()}
