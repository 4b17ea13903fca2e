"""One Planhat rate budget per token, shared by every worker (ARCHITECTURE.md, invariant 6).

GCRA (the generic cell rate algorithm): one timestamp per token, the "theoretical arrival
time"; a call is allowed when it is no more than ``burst`` intervals ahead of now. In Redis
it is one Lua script, so every worker on every machine draws from the same budget, timed by
the Redis server's clock. A 429 from Planhat sets a shared pause that every worker honours.

``LocalRateLimiter`` is the same algorithm in process, for the embedded default and tests.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx
import redis

from connectors.source import NoBudget
from worker.runtime.windows import LocalWindows, WindowLimiter

# KEYS[1]: the token's TAT (ms), KEYS[2]: its pause. ARGV[1]: ms per call, ARGV[2]: burst.
# Returns 0 when the call may go now, else how many ms to wait.
_GCRA = """
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return pause end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = (tat - now) - (burst - 1) * interval
if wait > 0 then return math.ceil(wait) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return 0
"""

# Pause for ARGV[1] ms unless a longer pause is already set.
_PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


# A 429 that gave no time: pause for a guess that doubles at each such 429 in a row.
# KEYS[1]: the pause, KEYS[2]: the last guess (ms). ARGV[1]: first guess, ARGV[2]: cap (ms).
# A pause already on is kept as it is (another worker met the same 429): returns its ms.
_BACK_OFF = """
local left = redis.call('PTTL', KEYS[1])
if left > 0 then return left end
local first = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local wait = first
if last > 0 then wait = math.min(cap, last * 2) end
wait = math.max(1, math.floor(wait))
redis.call('SET', KEYS[1], '1', 'PX', wait)
redis.call('SET', KEYS[2], wait, 'PX', wait + math.floor(cap))
return wait
"""


class RateLimiter(Protocol):
    def try_acquire(self, key: str) -> float:
        """Take one call from ``key``'s budget: 0.0 if taken, else seconds to wait first."""
        ...

    def pause(self, key: str, seconds: float) -> None:
        """Stop every caller of ``key`` for ``seconds`` (after a 429)."""
        ...

    def back_off(self, key: str, *, first: float, cap: float) -> float:
        """After a 429 that gave no time: stop every caller of ``key`` for a guess, ``first``
        the first time, twice the last guess when the last one was at most ``cap`` seconds
        ago (up to ``cap``); while a pause is on, keep it. Returns the pause in seconds."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetUse:
    """A token's budget as the limiter sees it now (the status page, ``planhat-sync status``)."""

    in_use: int  # calls of the burst taken and not yet earned back
    burst: int
    paused_for: float  # seconds every caller still waits after a 429 (0: no pause)
    rate_limited_hour: int  # 429s met (pauses asked for) in the last hour, and day
    rate_limited_day: int


# 429s are counted in buckets of this many seconds, kept a day: enough for "last hour" and
# "last day" without a row per 429.
COUNT_BUCKET = 600
BUCKETS_A_DAY = 86_400 // COUNT_BUCKET
BUCKETS_AN_HOUR = 3_600 // COUNT_BUCKET


def budget_key(token: str) -> str:
    """The limiter's name for a token: a hash, so the token itself never reaches Redis."""
    return hashlib.sha256(token.encode()).hexdigest()[:24]


class RedisRateLimiter:
    def __init__(
        self, client: redis.Redis, *, rate_per_minute: float, burst: int, prefix: str = "phs:rl"
    ) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError("rate_per_minute must be > 0 and burst >= 1")
        self._interval_ms = 60_000.0 / rate_per_minute
        self._burst = burst
        self._prefix = prefix
        self._client = client
        self._gcra = client.register_script(_GCRA)
        self._pause = client.register_script(_PAUSE)
        self._back_off = client.register_script(_BACK_OFF)

    def try_acquire(self, key: str) -> float:
        keys = [f"{self._prefix}:{key}:tat", f"{self._prefix}:{key}:pause"]
        wait_ms = self._gcra(keys=keys, args=[self._interval_ms, self._burst])
        return float(wait_ms) / 1000.0

    def pause(self, key: str, seconds: float) -> None:
        self._count_429(key)
        self._pause(keys=[f"{self._prefix}:{key}:pause"], args=[max(1, int(seconds * 1000))])

    def back_off(self, key: str, *, first: float, cap: float) -> float:
        self._count_429(key)
        keys = [f"{self._prefix}:{key}:pause", f"{self._prefix}:{key}:guess"]
        wait_ms = self._back_off(keys=keys, args=[max(1, int(first * 1000)), int(cap * 1000)])
        return float(wait_ms) / 1000.0

    def _count_429(self, key: str) -> None:
        counter = f"{self._prefix}:{key}:429:{int(time.time()) // COUNT_BUCKET}"
        with self._client.pipeline() as pipe:
            pipe.incr(counter)
            pipe.expire(counter, BUCKETS_A_DAY * COUNT_BUCKET + COUNT_BUCKET)
            pipe.execute()

    def use(self, key: str) -> BudgetUse:
        """Read only: what ``key``'s budget looks like now."""
        seconds, micros = self._client.time()
        now_ms = seconds * 1000 + micros // 1000
        bucket = seconds // COUNT_BUCKET
        names = [f"{self._prefix}:{key}:429:{bucket - n}" for n in range(BUCKETS_A_DAY)]
        with self._client.pipeline() as pipe:
            pipe.get(f"{self._prefix}:{key}:tat")
            pipe.pttl(f"{self._prefix}:{key}:pause")
            pipe.mget(names)
            tat, pause_ms, counts = pipe.execute()
        ahead = max(0.0, float(tat or now_ms) - now_ms)
        per_bucket = [int(count or 0) for count in counts]
        return BudgetUse(
            in_use=min(self._burst, math.ceil(ahead / self._interval_ms)),
            burst=self._burst,
            paused_for=max(0, int(pause_ms)) / 1000.0,
            rate_limited_hour=sum(per_bucket[:BUCKETS_AN_HOUR]),
            rate_limited_day=sum(per_bucket),
        )


class LocalRateLimiter:
    def __init__(
        self,
        *,
        rate_per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError("rate_per_minute must be > 0 and burst >= 1")
        self._interval = 60.0 / rate_per_minute
        self._burst = burst
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}
        self._guesses: dict[str, tuple[float, float]] = {}  # key → (last guess, until)
        self._429s: dict[str, dict[int, int]] = {}  # key → {bucket of wall time: 429s}
        self._lock = threading.Lock()

    def try_acquire(self, key: str) -> float:
        with self._lock:
            now = self._clock()
            paused = self._paused_until.get(key, 0.0) - now
            if paused > 0:
                return paused
            tat = max(self._tat.get(key, now), now)
            # Said as a difference from now, so a fresh key's wait is exactly
            # -(burst - 1) * interval: (now + i) - i can round to just above now.
            wait = (tat - now) - (self._burst - 1) * self._interval
            if wait > 0:
                return wait
            self._tat[key] = tat + self._interval
            return 0.0

    def pause(self, key: str, seconds: float) -> None:
        with self._lock:
            self._count_429(key)
            until = self._clock() + seconds
            self._paused_until[key] = max(self._paused_until.get(key, 0.0), until)

    def back_off(self, key: str, *, first: float, cap: float) -> float:
        with self._lock:
            self._count_429(key)
            now = self._clock()
            left = self._paused_until.get(key, 0.0) - now
            if left > 0:
                return left
            last, remembered_until = self._guesses.get(key, (0.0, 0.0))
            wait = min(cap, last * 2) if last > 0 and now < remembered_until else first
            self._paused_until[key] = now + wait
            self._guesses[key] = (wait, now + wait + cap)
            return wait

    def _count_429(self, key: str) -> None:  # under self._lock
        bucket = int(time.time()) // COUNT_BUCKET
        counts = self._429s.setdefault(key, {})
        counts[bucket] = counts.get(bucket, 0) + 1
        for old in [b for b in counts if b <= bucket - BUCKETS_A_DAY]:
            del counts[old]

    def use(self, key: str) -> BudgetUse:
        """What ``key``'s budget looks like now."""
        with self._lock:
            now = self._clock()
            ahead = max(0.0, self._tat.get(key, now) - now)
            bucket = int(time.time()) // COUNT_BUCKET
            counts = self._429s.get(key, {})
            return BudgetUse(
                in_use=min(self._burst, math.ceil(ahead / self._interval)),
                burst=self._burst,
                paused_for=max(0.0, self._paused_until.get(key, 0.0) - now),
                rate_limited_hour=sum(n for b, n in counts.items() if b > bucket - BUCKETS_AN_HOUR),
                rate_limited_day=sum(n for b, n in counts.items() if b > bucket - BUCKETS_A_DAY),
            )


def wait_for_budget(
    limiter: RateLimiter,
    key: str,
    *,
    max_wait: float,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Block until one call may go, and take it from the budget.

    Returns 0.0 when the call may go now. When the wait would pass ``max_wait`` seconds it
    returns the wait instead: the caller reschedules rather than hold a worker. Waiting for
    budget is not a failure and never counts as an attempt.
    """
    waited = 0.0
    while True:
        wait = limiter.try_acquire(key)
        if wait <= 0:
            return 0.0
        if waited + wait > max_wait:
            return wait
        sleep(wait)
        waited += wait


def budget_taker(
    limiter: RateLimiter,
    key: str,
    *,
    max_wait: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[[], None]:
    """A function that takes one call from the budget, waiting up to ``max_wait`` seconds,
    or raises ``NoBudget`` with the wait (what prepare hooks are given)."""

    def take() -> None:
        wait = wait_for_budget(limiter, key, max_wait=max_wait, sleep=sleep)
        if wait > 0:
            raise NoBudget(wait)

    return take


def metered(
    limiter: RateLimiter,
    key: str,
    *,
    max_wait: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, list[Callable[[httpx.Request], None]]]:
    """httpx event hooks that take every request from ``key``'s budget before it goes,
    waiting up to ``max_wait`` seconds, else raising ``NoBudget`` (nothing is sent)."""
    take = budget_taker(limiter, key, max_wait=max_wait, sleep=sleep)

    def before(request: httpx.Request) -> None:
        take()

    return {"request": [before]}


class WriteLimiters:
    """The write-back budgets: one limiter per rate a source declares (its
    ``write_rate_per_minute``), each keyed by source credential. ``make(rate, burst)``
    builds one: in Redis for every worker, or in process (the embedded engine).
    ``windows``: the per-record write limits (``worker/runtime/windows.py``)."""

    def __init__(
        self,
        make: Callable[[float, int], RateLimiter] | None = None,
        windows: WindowLimiter | None = None,
    ) -> None:
        self._make = make or _local
        self.windows: WindowLimiter = windows or LocalWindows()
        self._limiters: dict[float, RateLimiter] = {}
        self._lock = threading.Lock()

    def get(self, rate_per_minute: float) -> RateLimiter:
        with self._lock:
            limiter = self._limiters.get(rate_per_minute)
            if limiter is None:
                # Bursts of a second's worth: a batch goes out at once, then at the rate.
                burst = max(1, int(rate_per_minute / 60))
                limiter = self._make(rate_per_minute, burst)
                self._limiters[rate_per_minute] = limiter
            return limiter


def _local(rate_per_minute: float, burst: int) -> RateLimiter:
    return LocalRateLimiter(rate_per_minute=rate_per_minute, burst=burst)
