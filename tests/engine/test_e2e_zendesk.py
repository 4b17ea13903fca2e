"""Zendesk ⇄ Planhat end to end (tests/engine/zendesk_e2e.py): both stand-ins, the
receiver, two workers and beat as processes on PostgreSQL + Redis. Small in CI; the
issue's size (1,000 tickets over 100 companies, 5 minutes of changes) with
PLANHAT_SYNC_ZENDESK_E2E_FULL=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.engine.harness import RedisServer
from tests.engine.zendesk_e2e import FULL, SMALL, run

SIZE = FULL if os.environ.get("PLANHAT_SYNC_ZENDESK_E2E_FULL") == "1" else SMALL


# Small: about 55 s on a loaded 2-core machine; the timeout only guards against a hang.
@pytest.mark.timeout(90 if SIZE is SMALL else 1800)
def test_tickets_changed_on_both_sides_agree_each_change_crossing_once_without_echo(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    outcome = run(SIZE, redis_server, tmp_path)
    print("\n" + "\n".join(outcome.report()))

    assert outcome.disagreements == []
    assert outcome.not_crossed == []
    assert outcome.dead_letters == 0
    # each change crossed exactly once: one write on the other side per change, and
    # nothing written that changed nothing
    assert outcome.planhat_ticket_writes == SIZE.tickets + outcome.source_changes
    assert outcome.source_writes == outcome.planhat_changes
    assert outcome.planhat_echo_writes == 0
    assert outcome.source_echo_writes == 0
    assert outcome.source_changes == round(SIZE.source_share * SIZE.tickets)
    assert outcome.planhat_changes == round(SIZE.planhat_share * SIZE.tickets)
