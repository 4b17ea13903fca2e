"""When to try a Planhat call again, and how long to wait first.

Written by hand rather than with tenacity or stamina on purpose: a 429 must *not* count as
an attempt nor back off exponentially (ARCHITECTURE.md, invariant 6: waiting for budget is
not a failure), while 5xx and network errors must. Both libraries count every retry as an
attempt; bending them to this costs more lines than the loop in ``client.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from connectors.planhat.errors import DEFAULT_RATE_LIMIT_WAIT, RATE_LIMIT_GUESS_CAP


def equal_jitter(ceiling: float, rand: Callable[[], float] = random.random) -> float:
    """A wait in ``[ceiling/2, ceiling]``: spreads retries without ever retrying at once."""
    return ceiling / 2 + rand() * ceiling / 2


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 6  # tries for a retryable failure, the first one included
    base_delay: float = 0.5  # seconds before the first retry (before jitter)
    max_delay: float = 30.0  # cap on one backoff
    # 429s are waited out as long as the total waiting for one call stays under this; past
    # it the RateLimitedError reaches the caller (a worker then reschedules the item).
    max_rate_limit_wait: float = 600.0
    # A 429 that says nothing about when (no Retry-After, no X-Rate-Limit-Reset): wait
    # this long, doubled at each such 429 in a row up to the cap (Planhat's window resets
    # after 60-120 s; see errors.py). Never a fixed short guess that would hammer.
    rate_limit_guess: float = DEFAULT_RATE_LIMIT_WAIT
    rate_limit_guess_cap: float = RATE_LIMIT_GUESS_CAP

    def backoff_ceiling(self, failures: int) -> float:
        """Capped exponential: base, 2·base, 4·base, ... up to ``max_delay``."""
        return float(min(self.max_delay, self.base_delay * 2 ** max(0, failures - 1)))

    def rate_limit_guess_for(self, guesses: int) -> float:
        """The wait after the ``guesses``-th 429 in a row that gave no time."""
        return guessed_wait(self.rate_limit_guess, self.rate_limit_guess_cap, guesses)


def guessed_wait(first: float, cap: float, guesses: int) -> float:
    """``first``, then doubled for each further guess, up to ``cap``."""
    return float(min(cap, first * 2 ** max(0, guesses - 1)))


NO_RETRY = RetryPolicy(attempts=1, max_rate_limit_wait=0.0)
