"""Endusers and tickets: how Planhat finds their company, and what their e-mail does.

- An enduser's e-mail is "Keyable (if unique)" (support.planhat.com/en/articles/8146372):
  a bulk upsert item that names no other key and the e-mail of exactly one enduser updates
  it. Endusers may share an e-mail "provided externalId or sourceId is unique" (ibid.), so
  an item with a sourceId or externalId of its own is another enduser.
- Without ``companyId``, an enduser is placed by ``companyExternalId``, else by its e-mail's
  domain; "If an End User cannot be mapped to a Company in any way, then it will not be
  saved and instead the request is ignored" (help.planhat.com/en/articles/9586991;
  https://www.planhat.com/developers/api/enduser).
- A company's ``domains`` are "based on endusers emails domains"
  (https://www.planhat.com/developers/api/company).
- A ticket is placed by ``companyId``, ``companyExternalId`` or ``domains``, else by the
  user its e-mail names (planhat/docs ``source/includes/_tickets.md``), else by the e-mail's
  domain (assumed: as endusers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from connectors.planhat.models import MODELS, ModelSpec
from connectors.planhat.sandbox.derived import stamp
from connectors.planhat.sandbox.store import Doc, Store

COMPANIES = MODELS["companies"]
TICKETS = MODELS["tickets"]


def domain_of(email: Any) -> str:
    return str(email).rpartition("@")[2].strip().lower() if email else ""


def _present(doc: Doc, field: str) -> bool:
    return doc.get(field) not in (None, "", [])


class Contacts:
    def __init__(self, store: Store) -> None:
        self.store = store

    def enduser_by_email(self, email: Any) -> Doc | None:
        """The enduser with this e-mail (any case), if it is the only one."""
        same = self.store.endusers_by_email(str(email)) if email else []
        return same[0] if len(same) == 1 else None

    def company_by_domain(self, domains: Iterable[str]) -> str | None:
        wanted = {d.lower().strip() for d in domains if d}
        for company in self.store.docs(COMPANIES.name):
            if wanted & {str(d).lower() for d in company.get("domains") or []}:
                return str(company["_id"])
        return None

    def place(self, spec: ModelSpec, data: Doc, company: Callable[[str], str]) -> str | None:
        """The ``_id`` of the company an enduser or ticket sent without ``companyId`` goes
        to, or None. ``company(ref)`` resolves a reference or raises (a 400)."""
        key = spec.company_key or "companyId"
        found: str | None = None
        if _present(data, "companyExternalId"):
            reference = "extid-" + str(data["companyExternalId"])
            if spec is TICKETS:
                found = company(reference)  # an unknown one is refused, as before: assumed
            else:  # an enduser no company can take is ignored, not refused
                doc = self.store.by_external_id(COMPANIES.name, reference[6:], "")
                found = None if doc is None else str(doc["_id"])
        if found is None and spec is TICKETS and _present(data, "domains"):
            found = self.company_by_domain(data["domains"])
        if found is None and spec is TICKETS:
            enduser = self.enduser_by_email(data.get("email"))
            found = None if enduser is None else enduser.get(key)
        if found is None and _present(data, "email"):
            found = self.company_by_domain([domain_of(data["email"])])
        return found

    def fill_domains(self, enduser: Doc, now: str) -> None:
        """The enduser's domain joins its company's ``domains``. Assumed: every domain
        (free-mail ones too), kept when the enduser goes, and the company's updatedAt moves."""
        company = self.store.by_id(COMPANIES.name, str(enduser.get("companyId") or ""))
        domain = domain_of(enduser.get("email"))
        if company is None or not domain:
            return
        domains = list(company.get("domains") or [])
        if domain not in {str(d).lower() for d in domains}:
            updated = {**company, "domains": [*domains, domain]}
            stamp(COMPANIES, updated, company, now)
            self.store.save(COMPANIES, updated)
