"""What an Intercom ticket needs just before it is sent: its company (``companies.py``),
then its owner (``assignees.py``), one hook after the other on the same batch (``InTurn``,
shared with Zendesk in ``connectors/helpdesk_owners.py``)."""

from __future__ import annotations

from collections.abc import Mapping

from connectors.helpdesk_owners import InTurn
from connectors.intercom.assignees import FindOwners
from connectors.intercom.companies import PREPARE as COMPANIES
from connectors.source import PrepareHook

PREPARE: Mapping[str, PrepareHook] = {"tickets": InTurn(COMPANIES["tickets"], FindOwners())}
