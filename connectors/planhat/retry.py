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

    def backoff_ceiling(self, failures: int) -> float:
        """Capped exponential: base, 2·base, 4·base, ... up to ``max_delay``."""
        return float(min(self.max_delay, self.base_delay * 2 ** max(0, failures - 1)))


NO_RETRY = RetryPolicy(attempts=1, max_rate_limit_wait=0.0)
