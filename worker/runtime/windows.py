"""Per-record write limits, shared by every worker: at most ``limit`` writes to one record
in any ``window`` seconds (a helpdesk's updates per ticket in ten minutes, say: the source
asks through ``WriteBackContext.record_window``).

A sliding log of the record's recent writes: a write may go when fewer than ``limit`` are
younger than the window; else the answer is when the oldest leaves it. At most ``limit``
in every span of ``window`` also keeps within a fixed window however the server aligns
it; ``MARGIN`` covers the time a request takes to reach it. In Redis it is one Lua script
on a sorted set per record (timed by the Redis server's clock, so every worker agrees);
``LocalWindows`` is the same in process, for the embedded default and tests.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Protocol

import redis

MARGIN = 0.05  # of the window, at most MARGIN_CAP seconds: a request's way to the server
MARGIN_CAP = 2.0
KEYS_KEPT = 10_000

# KEYS[1]: the record's log (member: a unique id, score: ms). ARGV: limit, window ms, id.
# Returns 0 when the write may go (and logs it), else ms until one may.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.ceil(tonumber(oldest[2]) + window - now))
"""


def padded(window: float) -> float:
    return window + min(MARGIN_CAP, window * MARGIN)


class WindowLimiter(Protocol):
    def try_take(self, key: str, limit: int, window: float) -> float:
        """Take one of ``key``'s ``limit`` writes per ``window`` seconds: 0.0 if taken,
        else the seconds until one is free (nothing taken)."""
        ...


class RedisWindows:
    def __init__(self, client: redis.Redis, *, prefix: str = "phs:wbw") -> None:
        self._prefix = prefix
        self._take = client.register_script(_TAKE)

    def try_take(self, key: str, limit: int, window: float) -> float:
        args: list[int | str] = [limit, int(padded(window) * 1000), uuid.uuid4().hex]
        wait_ms = self._take(keys=[f"{self._prefix}:{key}"], args=args)
        return float(wait_ms) / 1000.0


class LocalWindows:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._logs: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def try_take(self, key: str, limit: int, window: float) -> float:
        span = padded(window)
        with self._lock:
            now = self._clock()
            if len(self._logs) > KEYS_KEPT:  # records written long ago: nothing to keep
                self._logs = {k: v for k, v in self._logs.items() if v and v[-1] > now - span}
            log = self._logs.setdefault(key, deque())
            while log and log[0] <= now - span:
                log.popleft()
            if len(log) < limit:
                log.append(now)
                return 0.0
            return max(0.001, log[0] + span - now)
