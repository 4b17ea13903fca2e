"""Survey respondents → the enduser and company their NPS belongs on, just before it is sent.

An NPS record from a survey names its respondent by e-mail only (connectors/surveys). The
link leans on what Planhat does with endusers (sources in
``connectors/planhat/sandbox/contacts.py``): an e-mail that one enduser has is a key of a
bulk upsert, and an enduser sent without a company goes to the company whose ``domains``
hold its e-mail's domain, or is silently ignored. It is a prepare hook
(``connectors/source.py``) the survey sources declare for ``nps``: the flush runs it on every
NPS batch just before sending, whatever source queued the records.

- A respondent in the directory (endusers by e-mail, read with ``select`` a page a call and
  cached per connection) is linked at once: the NPS gets their ``euId`` and their
  company's ``cId``.
- The others are sent as endusers by e-mail alone, in one bulk upsert: Planhat updates
  the one enduser that has the e-mail, places a new one by its domain, or ignores it.
  Those it ignored and whose record names a fallback company are sent again on it.
- After each upsert, the endusers written last are read back in one call
  (``sort=-updatedAt``: Planhat bumps ``updatedAt`` on every write) into the directory.
- A respondent still without an enduser waits (its company may be on its way), then is a
  dead letter that says which e-mail and domain found no company.

Planhat decides the company when the enduser is written, so no copy of the companies'
domains can be stale, and the e-mail key makes every write safe to repeat: a respondent is
one enduser however often its NPS is retried.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.planhat.bulk import Outcome
from connectors.planhat.client import PlanhatClient
from connectors.source import PrepareContext, Prepared, PrepareHook
from connectors.surveys import FALLBACK_COMPANY

log = structlog.get_logger(__name__)

# The survey sources: each has a ``fallback_company`` option.
FALLBACK_SOURCES = ("typeform", "surveymonkey")
TTL = 300.0  # seconds a directory serves before it is read again
PAGE = 2000
SELECT = ["_id", "email", "companyId"]


@dataclass(slots=True)
class Directory:
    endusers: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # e-mail → ids
    loaded_at: float = 0.0
    pages: int = 0  # calls the read took

    def linked(self, email: str) -> tuple[str, str] | None:
        """The enduser ``_id`` and company ``_id`` of this e-mail, if both are known."""
        known = self.endusers.get(email)
        return (known[0], known[1]) if known and known[1] else None


# Takes one call's worth of the connection's rate budget, or raises ``NoBudget``.
Budget = Callable[[], None]


class Directories:
    """Each connection's directory, cached for ``ttl`` seconds (one per process)."""

    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, Directory] = {}
        self._lock = threading.Lock()

    def get(self, connection: str, planhat: PlanhatClient, budget: Budget) -> Directory:
        """The connection's directory, read again when older than the TTL. Respondents it
        does not know need no fresher copy: writing them asks Planhat (``link``)."""
        with self._lock:
            directory = self._cache.get(connection)
        if directory is None or self._clock() - directory.loaded_at > self._ttl:
            directory = _read(planhat, budget)
            directory.loaded_at = self._clock()
            with self._lock:
                self._cache[connection] = directory
        return directory


def _read(planhat: PlanhatClient, budget: Budget) -> Directory:
    directory = Directory()
    offset = 0
    while True:
        budget()
        page = planhat.list_page("endusers", limit=PAGE, offset=offset, select=SELECT)
        directory.pages += 1
        for enduser in page:
            if enduser.get("email"):
                email = _normal(enduser["email"])
                directory.endusers.setdefault(email, (enduser["_id"], enduser.get("companyId")))
        offset += len(page)
        if len(page) < PAGE:
            log.info("respondents.directory", endusers=len(directory.endusers))
            return directory


def _normal(email: Any) -> str:
    return str(email).lower().strip()


def needs_linking(model: str, fields: Mapping[str, Any]) -> bool:
    """An NPS record that names its respondent by e-mail and no company."""
    return model == "nps" and bool(fields.get("email")) and not fields.get("cId")


@dataclass(frozen=True, slots=True)
class Linked:
    records: list[dict[str, Any]]  # to send, in the order given
    refused: dict[int, str]  # index → why it cannot be linked (a dead letter)
    unknown: dict[int, str]  # index → no company has its domain (yet): it waits
    created: int  # respondents Planhat now has an enduser for
    calls: int = 0  # Planhat calls made


def _write(
    planhat: PlanhatClient,
    budget: Budget,
    directory: Directory,
    endusers: list[dict[str, Any]],
    refused: dict[str, str],
) -> None:
    """Upsert ``endusers`` (keyed by e-mail), then read back the endusers written last."""
    budget()
    for enduser, result in zip(endusers, planhat.bulk_upsert("endusers", endusers), strict=True):
        if result.outcome is Outcome.REJECTED:
            email, said = enduser["email"], result.message or result.outcome
            refused[email] = f"Planhat did not create the enduser {email}: {said}"
    budget()
    wanted = {enduser["email"] for enduser in endusers}
    for written in planhat.list_page("endusers", limit=PAGE, sort="-updatedAt", select=SELECT):
        email = _normal(written.get("email") or "")
        if email in wanted:
            directory.endusers[email] = (written["_id"], written.get("companyId"))


def link(
    directory: Directory,
    planhat: PlanhatClient,
    budget: Budget,
    records: Sequence[dict[str, Any]],
    fallbacks: Sequence[str | None],
) -> Linked:
    """Give each NPS record that needs it its ``euId`` and ``cId``, having Planhat make the
    endusers that are missing first. ``fallbacks``: each record's fallback company (its
    ``~fallbackCompany`` hint), if any."""
    missing: dict[str, str | None] = {}  # e-mail → the fallback company of its first record
    for index, record in enumerate(records):
        email = _normal(record.get("email"))
        if needs_linking("nps", record) and directory.linked(email) is None:
            missing.setdefault(email, fallbacks[index])
    why: dict[str, str] = {}  # e-mail → why Planhat refused its enduser
    calls = 0
    if missing:
        _write(planhat, budget, directory, [{"email": e} for e in missing], why)
        calls += 2
        on_fallback = [
            {"email": e, "companyId": fallback}
            for e, fallback in missing.items()
            if fallback and e not in why and directory.linked(e) is None
        ]
        if on_fallback:
            _write(planhat, budget, directory, on_fallback, why)
            calls += 2
    refused: dict[int, str] = {}
    unknown: dict[int, str] = {}
    linked = []
    for index, record in enumerate(records):
        email = _normal(record.get("email"))
        found = directory.linked(email) if needs_linking("nps", record) else None
        if found is not None:
            record = {**record, "euId": found[0], "cId": found[1]}
        elif email in why:
            refused[index] = why[email]
        elif needs_linking("nps", record):
            source = record.get("source")
            remedy = (
                f"set {source}.fallback_company"
                if source in FALLBACK_SOURCES
                else "send the record with its cId"
            )
            unknown[index] = (
                f"no Planhat enduser has the e-mail {email} and no company has the domain "
                f"{email.rpartition('@')[2]}; add the domain to its company in Planhat, or "
                f"{remedy}, then retry this dead letter"
            )
        linked.append(dict(record))
    created = sum(1 for email in missing if directory.linked(email) is not None)
    return Linked(records=linked, refused=refused, unknown=unknown, created=created, calls=calls)


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
        if not any(needs_linking("nps", record) for record in records):
            return Prepared(records=list(records))
        directories = context.memo.setdefault("respondents", Directories(self._ttl, self._clock))
        started = self._clock()
        directory = directories.get(context.connection, context.planhat, context.take_budget)
        read = directory.pages if directory.loaded_at >= started else 0
        fallbacks = [item.get(FALLBACK_COMPANY) for item in fields]
        linked = link(directory, context.planhat, context.take_budget, records, fallbacks)
        return Prepared(
            records=linked.records,
            refused=linked.refused,
            waiting=linked.unknown,
            calls=read + linked.calls,
        )


PREPARE: Mapping[str, PrepareHook] = {"nps": LinkRespondents()}
