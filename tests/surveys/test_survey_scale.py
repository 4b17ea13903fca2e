"""1,000 survey responses from 300 respondents across 50 companies: every NPS lands on its
respondent's enduser and company, each respondent is one enduser, and it takes a handful
of bulk calls per model, not one per response."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from tests.conftest import sandbox_stats
from tests.surveys.harness import Surveys, typeform_event
from worker.runtime.settings import EngineSettings

COMPANIES, RESPONDENTS, RESPONSES, KNOWN = 50, 300, 1000, 100


def test_a_thousand_responses_land_linked_in_a_handful_of_bulk_calls(tmp_path: Path) -> None:
    # A backlog: every response is stored before the workers start, and changes gather for
    # PLANHAT_SYNC_FLUSH_LINGER. What this checks is linking at scale in a few calls; a
    # steady stream costs more calls, paced by PLANHAT_SYNC_FLUSH_BUDGET_SHARE
    # (tests/engine/test_flush_pacing.py). Posting took 5-10 s on a loaded machine: a linger
    # counted during it split the batches at random.
    config = EngineSettings(flush_linger=3.0, sweep_interval=1.0)
    system = Surveys(tmp_path, config=config, start=False)
    try:
        companies = [system.company(f"Company {c}", f"c{c}.example") for c in range(COMPANIES)]
        emails = [f"person{r}@c{r % COMPANIES}.example" for r in range(RESPONDENTS)]
        known = {email: system.enduser(email, companies[r % COMPANIES])
                 for r, email in enumerate(emails[:KNOWN])}  # fmt: skip
        before = Counter(sandbox_stats(system.planhat)["by_route"])

        started = time.monotonic()
        for n in range(RESPONSES):
            answer = system.post_typeform(
                typeform_event(f"tok-{n}", emails[n % RESPONDENTS], n % 11)
            )
            assert answer.status_code == 202
        posted = time.monotonic()
        system.dispatcher.start()
        system.drain(timeout=120)
        drained = time.monotonic()

        calls = Counter(sandbox_stats(system.planhat)["by_route"]) - before
        records = list(system.client.list("nps"))
        endusers = {e["email"]: e for e in system.client.list("endusers")}
        letters = system.letters()
    finally:
        system.close()

    print(f"\n{RESPONSES} responses posted in {posted - started:.1f} s, drained in "
          f"{drained - posted:.1f} s; Planhat calls {dict(calls)}")  # fmt: skip
    assert letters == []
    assert len(records) == RESPONSES
    assert sorted(endusers) == sorted(emails)  # every respondent once: none twice
    assert all(endusers[email]["_id"] == known[email] for email in known)  # reused
    for record in records:
        n = int(record["sourceId"].removeprefix("typeform-tok-"))
        email = emails[n % RESPONDENTS]
        assert (record["email"], record["score"]) == (email, n % 11)
        assert record["cId"] == companies[(n % RESPONDENTS) % COMPANIES]
        assert record["euId"] == endusers[email]["_id"]
    # A handful of bulk calls per model: 1,000 NPS at 500 a call, 200 new endusers.
    assert calls["PUT /nps"] <= 4
    assert calls["PUT /endusers"] <= 4
    assert calls["GET /companies"] + calls["GET /endusers"] <= 6  # the directory, read rarely
