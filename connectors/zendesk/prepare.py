"""What a Zendesk ticket needs just before it is sent: its company (``companies.py``),
then its owner (``assignees.py``), one hook after the other on the same batch
(``InTurn``, shared with Intercom in ``connectors/helpdesk_owners.py``)."""

from __future__ import annotations

from collections.abc import Mapping

from connectors.helpdesk_owners import InTurn
from connectors.source import PrepareHook
from connectors.zendesk.assignees import FindOwners
from connectors.zendesk.companies import PREPARE as COMPANIES

__all__ = ["PREPARE", "InTurn"]

PREPARE: Mapping[str, PrepareHook] = {"tickets": InTurn(COMPANIES["tickets"], FindOwners())}
