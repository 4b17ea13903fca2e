"""A token bucket per API token, shaped like Planhat's limits.

Planhat allows about 200 calls a minute per token with bursts of up to 50
(planhat-api.md); the sandbox's defaults are the same and both are configurable.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int  # whole seconds, as the Retry-After header carries them


class TokenBucket:
    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError("rate_per_minute must be > 0 and burst >= 1")
        self.rate_per_minute = rate_per_minute
        self.burst = burst
        self._per_second = rate_per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # token → (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> Decision:
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self._per_second)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return Decision(True, int(tokens - 1.0), 0)
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self._per_second
            return Decision(False, 0, max(1, math.ceil(wait)))

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
