"""A Zendesk ticket's Planhat company, found just before the ticket is sent: the shared
helpdesk hook (``connectors/helpdesk_companies.py``) with Zendesk's hint, the
organization's ``external_id``, and Zendesk's words for the fix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.helpdesk_companies import FindCompanies
from connectors.source import PrepareHook
from connectors.zendesk.mapping import ORG_HINT


def why(key: str, hints: Sequence[str], domain: str) -> str:
    org = (
        f"its organization's external_id {hints[0]!r} is no company's externalId and "
        if hints
        else ""
    )
    return (
        f"zendesk ticket {key}: {org}no Planhat company has the domain {domain}; add the "
        "domain to its company in Planhat (or set the organization's external_id to the "
        "company's externalId in Zendesk), then retry this dead letter"
    )


PREPARE: Mapping[str, PrepareHook] = {"tickets": FindCompanies("zendesk", ORG_HINT, why)}
