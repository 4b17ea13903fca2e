"""Reconciliation lists only what a connection's own sources write back: a source the
connection has no secret for costs no call (the exactly-once e2e test caught a stray
`GET /tickets` for a helpdesk nobody configured)."""

from __future__ import annotations

from state.connections import Tenant
from worker.intake.reconcile import synced_models


def tenant(secrets: dict[str, str], options: dict[str, str] | None = None) -> Tenant:
    return Tenant(name="default", planhat_base_url="http://127.0.0.1:9", planhat_token="t",
                  secrets=secrets, options=options or {})  # fmt: skip


def test_a_connection_lists_only_what_its_own_sources_write_back() -> None:
    outbound = {"standard.outbound_url": "http://127.0.0.1:9/in",
                "standard.outbound_models": "tasks"}  # fmt: skip
    assert synced_models(tenant({"standard": "whsec_x"})) == []
    assert synced_models(tenant({"standard": "whsec_x"}, outbound)) == ["tasks"]
    assert "tickets" in synced_models(tenant({"zendesk": "s", "zendesk:api_token": "t"}))
    assert "tickets" not in synced_models(tenant({"standard": "whsec_x"}, outbound))
