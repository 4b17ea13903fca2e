"""A Chargebee invoice as Planhat's invoice: only the documented fields, and Chargebee's
status as pending, paid or overdue (connectors/chargebee/mapping.py ``INVOICE_STATUSES``).

Cases start from the fixture ``invoice_updated`` (invoice 1002, paid).
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.planhat.models import MODELS
from tests.chargebee.test_chargebee import EVENT_FILES, encoded, event, mapped
from tests.chargebee.test_chargebee_revenue import rejected

INVOICES = MODELS["invoices"]


def invoice_with(**fields: Any) -> dict[str, Any]:
    updated = event("invoice_updated")
    updated["content"]["invoice"] |= fields
    return updated


def test_every_invoice_sends_only_fields_planhat_documents() -> None:
    # the registry's invoice fields (https://www.planhat.com/developers/api/invoice)
    assert INVOICES.fields is not None
    sent = 0
    for path in EVENT_FILES:
        for model, _, _, fields, _ in mapped(path.read_bytes()):
            if model == "invoices":
                sent += 1
                assert set(fields) <= INVOICES.fields - {"extId"}, path.name
                assert not set(fields) & INVOICES.generated, path.name
    assert sent == 8


@pytest.mark.parametrize(
    ("chargebee", "planhat"),
    [
        ("paid", "paid"),
        ("posted", "pending"),
        ("pending", "pending"),
        ("payment_due", "overdue"),
        ("not_paid", "overdue"),
    ],
)
def test_chargebees_invoice_status_becomes_pending_paid_or_overdue(
    chargebee: str, planhat: str
) -> None:
    [(model, _, _, fields, _)] = mapped(encoded(invoice_with(status=chargebee)))

    assert (model, fields["status"]) == ("invoices", planhat)


def test_a_voided_invoice_is_a_dead_letter_saying_what_to_do() -> None:
    reason = rejected(invoice_with(status="voided"))

    assert reason.startswith("Chargebee invoice 1002 is void")
    assert "delete it in Planhat" in reason


@pytest.mark.parametrize("status", [None, "written_off"])
def test_a_status_chargebee_does_not_document_is_a_dead_letter(status: str | None) -> None:
    reason = rejected(invoice_with(status=status))

    assert reason == f"Chargebee invoice 1002 has a status we do not know: {status!r}"
