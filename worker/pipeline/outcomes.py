"""What a flush does about anything that goes wrong: one function, one action per outcome.

outcome                                            action
429 from any call in the flush (send or prepare)   PAUSE: every worker on the token
                                                   waits ``retry_after``, or when Planhat
                                                   gave no time a shared guess that
                                                   doubles per 429 up to 120 s; no attempt
no rate budget left (``NoBudget``)                 WAIT: try again when there is; no
                                                   attempt
401/403, a redirect (``FatalError``)               REST: configuration; the
                                                   connection rests, no attempt
5xx, timeout, an answer we cannot read             BACK_OFF: an attempt; after
                                                   ``max_attempts`` a dead letter
400 on the whole call, or any other exception      SPLIT the batch to find the record
while preparing or sending, for several records    that causes it
the same for one record; a prepare hook's refusal  BURY that record: a dead letter
                                                   with the reason

A write back to a source meets the same table (``worker/pipeline/write_back.py``): its
429 pauses that source's budget, 5xx and timeouts back off, a refusal is buried with the
source's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from connectors.planhat.errors import FatalError, PlanhatError, RateLimitedError, RejectedError
from connectors.source import (
    NoBudget,
    TargetRateLimited,
    TargetRefused,
    TargetUnavailable,
)

FATAL_PAUSE = 60.0  # seconds a connection rests after a 401/403 (configuration)


class Action(StrEnum):
    PAUSE = "pause"
    WAIT = "wait"
    REST = "rest"
    BACK_OFF = "back off"
    SPLIT = "split"
    BURY = "bury"


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    reason: str
    delay: float = 0.0  # PAUSE, WAIT, REST: seconds before the records are due again
    guessed: bool = False  # PAUSE: Planhat gave no time; ``delay`` is a first guess


def outcome_of(error: Exception, records: int) -> Outcome:
    """The action for ``error``, raised while preparing or sending ``records`` records."""
    if isinstance(error, RateLimitedError):
        return Outcome(Action.PAUSE, str(error), error.retry_after, guessed=error.guessed)
    if isinstance(error, TargetRateLimited):
        return Outcome(Action.PAUSE, str(error), error.retry_after)
    if isinstance(error, NoBudget):
        return Outcome(Action.WAIT, str(error), error.wait)
    if isinstance(error, FatalError):
        return Outcome(Action.REST, str(error), FATAL_PAUSE)
    if isinstance(error, RejectedError):  # the request itself: some record in it is bad
        reason = f"Planhat refused it: {error}"
    elif isinstance(error, TargetRefused):
        reason = f"the source refused it: {error}"
    elif isinstance(error, PlanhatError | TargetUnavailable):  # retryable, or unreadable
        return Outcome(Action.BACK_OFF, str(error))
    else:  # a bug or a record we cannot even encode: pin it to the record
        reason = f"could not be sent: {type(error).__name__}: {error}"
    return Outcome(Action.SPLIT if records > 1 else Action.BURY, reason)
