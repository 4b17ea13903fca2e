"""Rate limits per API token, shaped like Planhat's.

Planhat allows about 200 calls a minute per token, 150 a second, with bursts of up to 50
in parallel (https://docs.planhat.com). ``TokenBucket`` (the default: 200/min, bursts of
50) spreads that quota evenly; ``FixedWindow`` is the older docs' window of 200 calls that
resets every 60-120 s, and the hard limit per second.
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


class FixedWindow:
    """``limit`` calls per window per key; a window starts at a key's first call and
    resets ``window_s`` seconds later. Planhat's older docs: "The limit of 200 calls is
    reset every 60-120 seconds" (planhat/docs source/includes/_intro.md); its hard limit,
    150 requests a second (https://docs.planhat.com), is the same with a 1 s window (that
    it is counted in fixed windows is assumed)."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # key → (window end, calls)
        self._lock = threading.Lock()

    def take(self, key: str) -> Decision:
        with self._lock:
            now = self._clock()
            end, calls = self._windows.get(key, (0.0, 0))
            if now >= end:
                end, calls = now + self.window_s, 0
            if calls < self.limit:
                self._windows[key] = (end, calls + 1)
                return Decision(True, self.limit - calls - 1, 0)
            self._windows[key] = (end, calls)
            return Decision(False, 0, max(1, math.ceil(end - now)))

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
