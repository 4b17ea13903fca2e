"""One function maps whatever goes wrong in a flush to one action."""

from __future__ import annotations

import pytest

from connectors.planhat.errors import (
    FatalError,
    NotFoundError,
    RateLimitedError,
    RejectedError,
    RetryableError,
)
from connectors.source import NoBudget
from worker.pipeline.outcomes import FATAL_PAUSE, Action, Outcome, outcome_of


@pytest.mark.parametrize(
    ("error", "records", "expected"),
    [
        (RateLimitedError("slow down", retry_after=7.0), 5, Outcome(Action.PAUSE, "", 7.0)),
        (NoBudget(3.0), 5, Outcome(Action.WAIT, "", 3.0)),
        (FatalError("401", status_code=401), 5, Outcome(Action.REST, "", FATAL_PAUSE)),
        (RetryableError("503", status_code=503), 5, Outcome(Action.BACK_OFF, "")),
        (RetryableError("503", status_code=503), 1, Outcome(Action.BACK_OFF, "")),
        (RejectedError("bad", status_code=400), 5, Outcome(Action.SPLIT, "")),
        (RejectedError("bad", status_code=400), 1, Outcome(Action.BURY, "")),
        (NotFoundError("gone", status_code=404), 1, Outcome(Action.BURY, "")),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates"), 2, Outcome(Action.SPLIT, "")),
        (TypeError("not serialisable"), 1, Outcome(Action.BURY, "")),
    ],
)
def test_every_outcome_has_one_action(error: Exception, records: int, expected: Outcome) -> None:
    outcome = outcome_of(error, records)

    assert (outcome.action, outcome.delay) == (expected.action, expected.delay)


def test_a_buried_record_says_what_planhat_or_the_error_said() -> None:
    refused = outcome_of(RejectedError("name must be text", status_code=400), 1)
    broken = outcome_of(TypeError("not serialisable"), 1)

    assert refused.reason == "Planhat refused it: 400: name must be text"
    assert broken.reason == "could not be sent: TypeError: not serialisable"
