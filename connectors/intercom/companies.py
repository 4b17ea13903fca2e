"""An Intercom ticket's Planhat company, found just before the ticket is sent: the shared
helpdesk hook (``connectors/helpdesk_companies.py``) with Intercom's hint, the contact's
companies' ``company_id``, and Intercom's words for the fix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.helpdesk_companies import FindCompanies
from connectors.intercom.mapping import COMPANY_HINT
from connectors.source import PrepareHook


def why(key: str, hints: Sequence[str], domain: str) -> str:
    ids = ", ".join(repr(h) for h in hints)
    known = f"its contact's companies' company_id ({ids}) is no company's externalId and " if (
        hints
    ) else ""  # fmt: skip
    return (
        f"intercom ticket {key}: {known}no Planhat company has the domain {domain}; add the "
        "domain to its company in Planhat (or give the contact a company in Intercom whose "
        "company_id is the Planhat company's externalId), then retry this dead letter"
    )


PREPARE: Mapping[str, PrepareHook] = {"tickets": FindCompanies("intercom", COMPANY_HINT, why)}
