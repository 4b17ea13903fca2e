"""The shared Planhat rate budget (GCRA): the same behaviour in process, in fakeredis and in
the real Redis.

Redis times the budget by its own clock, which a test cannot stop, so the behaviour tests
assert on the computed waits with room for a few milliseconds of drift. The in-process
limiter takes a fake clock, so its own tests are exact.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import fakeredis
import pytest
import redis

from worker.runtime.ratelimit import (
    LocalRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    budget_key,
    wait_for_budget,
)

RATE = 60  # one call a second
BURST = 3
# Redis's clock keeps running between calls: a wait computed a few ms later is a little shorter.
DRIFT = 0.1


class FakeClock:
    """A monotonic clock that only moves when told; ``sleep`` moves it."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Backend:
    """A limiter, and how to get another caller drawing from the same budget."""

    name: str
    limiter: RateLimiter
    another_caller: Callable[[], RateLimiter]
    clock: FakeClock | None = None


def _local() -> Backend:
    clock = FakeClock()
    limiter = LocalRateLimiter(rate_per_minute=RATE, burst=BURST, clock=clock)
    # In one process every caller shares the one limiter.
    return Backend("local", limiter, lambda: limiter, clock=clock)


def _redis(name: str, client: redis.Redis) -> Backend:
    def make() -> RedisRateLimiter:
        return RedisRateLimiter(client, rate_per_minute=RATE, burst=BURST)

    return Backend(name, make(), make)


@pytest.fixture(params=["local", "fakeredis", "redis"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "local":
        return _local()
    if request.param == "fakeredis":
        return _redis("fakeredis", fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    client: redis.Redis = request.getfixturevalue("redis_client")
    return _redis("redis", client)


@pytest.fixture(params=["fakeredis", "redis"])
def redis_like(request: pytest.FixtureRequest) -> redis.Redis:
    """A Redis client, fake or real, for what only the Redis limiter does."""
    if request.param == "fakeredis":
        return fakeredis.FakeRedis(server=fakeredis.FakeServer())
    client: redis.Redis = request.getfixturevalue("redis_client")
    return client


def about(expected: float) -> Callable[[float], bool]:
    """A wait computed at most ``DRIFT`` seconds after it was ``expected``."""
    return lambda wait: expected - DRIFT <= wait <= expected


# --- the same behaviour on every backend -------------------------------------------------


def test_a_burst_goes_at_once_and_the_next_call_waits_one_interval(backend: Backend) -> None:
    limiter = backend.limiter

    burst = [limiter.try_acquire("k") for _ in range(BURST)]
    wait = limiter.try_acquire("k")

    assert burst == [0.0] * BURST
    assert about(1.0)(wait), wait


def test_a_call_told_to_wait_takes_nothing_from_the_budget(backend: Backend) -> None:
    limiter = backend.limiter
    for _ in range(BURST):
        assert limiter.try_acquire("k") == 0.0

    waits = [limiter.try_acquire("k") for _ in range(3)]

    # had any of them been taken, the next would wait a further whole interval
    assert all(about(1.0)(wait) for wait in waits), waits


def test_a_pause_stops_every_caller_of_that_key_only(backend: Backend) -> None:
    other_worker = backend.another_caller()

    backend.limiter.pause("k", 5)

    assert about(5.0)(backend.limiter.try_acquire("k"))
    assert about(5.0)(other_worker.try_acquire("k"))
    assert other_worker.try_acquire("other-key") == 0.0


def test_a_shorter_pause_does_not_shorten_a_longer_one(backend: Backend) -> None:
    backend.limiter.pause("k", 5)
    backend.another_caller().pause("k", 1)

    assert about(5.0)(backend.limiter.try_acquire("k"))


def test_a_longer_pause_extends_a_shorter_one(backend: Backend) -> None:
    backend.limiter.pause("k", 1)
    backend.another_caller().pause("k", 5)

    assert about(5.0)(backend.limiter.try_acquire("k"))


def test_keys_have_budgets_of_their_own(backend: Backend) -> None:
    limiter = backend.limiter
    for _ in range(BURST):
        assert limiter.try_acquire("token-a") == 0.0
    assert limiter.try_acquire("token-a") > 0

    assert [limiter.try_acquire("token-b") for _ in range(BURST)] == [0.0] * BURST
    assert limiter.try_acquire("token-b") > 0


# --- the in-process limiter, on a fake clock -----------------------------------------------


def local(burst: int = BURST, rate: float = RATE) -> tuple[LocalRateLimiter, FakeClock]:
    clock = FakeClock()
    return LocalRateLimiter(rate_per_minute=rate, burst=burst, clock=clock), clock


def test_the_budget_refills_one_call_per_interval() -> None:
    limiter, clock = local()
    for _ in range(BURST):
        assert limiter.try_acquire("k") == 0.0
    assert limiter.try_acquire("k") == 1.0

    clock.advance(0.5)
    assert limiter.try_acquire("k") == 0.5
    clock.advance(0.5)
    assert limiter.try_acquire("k") == 0.0
    assert limiter.try_acquire("k") == 1.0


def test_a_long_idle_never_allows_more_than_the_burst_at_once() -> None:
    limiter, clock = local()
    for _ in range(BURST):
        limiter.try_acquire("k")

    clock.advance(3_600)

    assert [limiter.try_acquire("k") for _ in range(BURST)] == [0.0] * BURST
    assert limiter.try_acquire("k") == 1.0


def test_a_pause_ends_on_time() -> None:
    limiter, clock = local()
    limiter.pause("k", 5)

    clock.advance(4)
    assert limiter.try_acquire("k") == 1.0
    clock.advance(1)
    assert limiter.try_acquire("k") == 0.0


def test_calls_waiting_during_a_pause_take_nothing_from_the_budget() -> None:
    limiter, clock = local()
    limiter.pause("k", 5)
    for _ in range(10):
        assert limiter.try_acquire("k") > 0

    clock.advance(5)

    assert [limiter.try_acquire("k") for _ in range(BURST)] == [0.0] * BURST
    assert limiter.try_acquire("k") == 1.0


def test_the_rate_sets_the_interval() -> None:
    limiter, _ = local(burst=1, rate=180)

    assert limiter.try_acquire("k") == 0.0
    assert limiter.try_acquire("k") == pytest.approx(60 / 180)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-5, 1), (60, 0)])
def test_a_limiter_refuses_a_rate_or_burst_that_allows_nothing(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate_per_minute"):
        LocalRateLimiter(rate_per_minute=rate, burst=burst)
    with pytest.raises(ValueError, match="rate_per_minute"):
        RedisRateLimiter(fakeredis.FakeRedis(), rate_per_minute=rate, burst=burst)


# --- wait_for_budget -----------------------------------------------------------------------


def test_wait_for_budget_does_not_sleep_when_there_is_budget() -> None:
    limiter, clock = local(burst=1)

    assert wait_for_budget(limiter, "k", max_wait=5, sleep=clock.sleep) == 0.0
    assert clock.slept == []
    assert limiter.try_acquire("k") == 1.0  # the call was taken


def test_wait_for_budget_sleeps_out_a_wait_that_fits_and_takes_the_call() -> None:
    limiter, clock = local(burst=1)
    limiter.try_acquire("k")

    result = wait_for_budget(limiter, "k", max_wait=5, sleep=clock.sleep)

    assert result == 0.0
    assert clock.slept == [1.0]
    assert limiter.try_acquire("k") == 1.0  # the call it waited for was taken


def test_wait_for_budget_sleeps_out_a_pause_that_fits() -> None:
    limiter, clock = local(burst=1)
    limiter.pause("k", 3)

    assert wait_for_budget(limiter, "k", max_wait=5, sleep=clock.sleep) == 0.0
    assert clock.slept == [3.0]


def test_wait_for_budget_returns_a_wait_longer_than_max_wait_without_sleeping() -> None:
    limiter, clock = local(burst=1)
    limiter.pause("k", 10)

    result = wait_for_budget(limiter, "k", max_wait=5, sleep=clock.sleep)

    assert result == 10.0
    assert clock.slept == []
    assert limiter.try_acquire("k") == 10.0  # nothing taken


def test_wait_for_budget_never_sleeps_past_max_wait_in_total() -> None:
    # given another worker that takes every call that comes free while this one sleeps
    limiter, clock = local(burst=1)
    limiter.try_acquire("k")

    def sleep_while_another_worker_takes_the_call(seconds: float) -> None:
        clock.sleep(seconds)
        assert limiter.try_acquire("k") == 0.0

    result = wait_for_budget(
        limiter, "k", max_wait=2.5, sleep=sleep_while_another_worker_takes_the_call
    )

    # two one-second sleeps fit in 2.5 s, a third would not: it hands the wait back instead
    assert result == 1.0
    assert clock.slept == [1.0, 1.0]
    assert sum(clock.slept) <= 2.5


# --- budget_key ----------------------------------------------------------------------------


def test_budget_key_hides_the_token_and_is_stable() -> None:
    token = "pk_live_0123456789abcdef"

    key = budget_key(token)

    assert token not in key
    assert "0123456789" not in key
    assert re.fullmatch(r"[0-9a-f]{24}", key)
    assert budget_key(token) == key
    assert budget_key(token + "x") != key


def test_budget_key_is_what_reaches_redis() -> None:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    limiter = RedisRateLimiter(client, rate_per_minute=RATE, burst=BURST)
    token = "pk_live_secret"

    limiter.try_acquire(budget_key(token))
    limiter.pause(budget_key(token), 1)

    stored = [str(name) for name in client.keys("*")]
    assert len(stored) == 3  # its budget, its pause, and this 10 minutes' count of 429s
    assert not [name for name in stored if "secret" in name or token in name]


# --- only in Redis: many workers, one budget -----------------------------------------------


def test_two_workers_on_one_redis_share_one_budget(redis_like: redis.Redis) -> None:
    first = RedisRateLimiter(redis_like, rate_per_minute=RATE, burst=BURST)
    second = RedisRateLimiter(redis_like, rate_per_minute=RATE, burst=BURST)

    waits = [worker.try_acquire("k") for worker in (first, second, first, second, first, second)]

    assert waits[:BURST] == [0.0] * BURST
    assert all(about(1.0)(wait) for wait in waits[BURST:]), waits


def test_workers_with_another_prefix_do_not_share_a_budget(redis_like: redis.Redis) -> None:
    first = RedisRateLimiter(redis_like, rate_per_minute=RATE, burst=BURST)
    other = RedisRateLimiter(redis_like, rate_per_minute=RATE, burst=BURST, prefix="elsewhere")
    for _ in range(BURST):
        assert first.try_acquire("k") == 0.0

    assert other.try_acquire("k") == 0.0


def test_calls_waiting_during_a_pause_leave_the_budget_in_redis_untouched(
    redis_like: redis.Redis,
) -> None:
    limiter = RedisRateLimiter(redis_like, rate_per_minute=RATE, burst=BURST)
    limiter.pause("k", 5)

    waits = [limiter.try_acquire("k") for _ in range(10)]

    assert all(about(5.0)(wait) for wait in waits), waits
    assert redis_like.exists("phs:rl:k:tat") == 0


def test_the_budget_state_expires_from_redis(redis_like: redis.Redis) -> None:
    limiter = RedisRateLimiter(redis_like, rate_per_minute=RATE, burst=BURST)
    limiter.try_acquire("k")
    limiter.pause("k", 2)

    ttls = [redis_like.pttl(f"phs:rl:k:{part}") for part in ("tat", "pause")]

    # nothing lingers for ever: the TAT lives one interval past now plus a second
    assert 1_900 <= ttls[0] <= 2_000
    assert 1_900 <= ttls[1] <= 2_000


@pytest.mark.parametrize("now", [0.1, 12_345.678901, 1.7e9 + 0.3])
def test_the_first_call_of_a_fresh_key_always_goes_whatever_the_float_rounding(
    now: float,
) -> None:
    # Found in CI: with a long interval, (now + interval) - interval rounded to just above
    # now, and a fresh key with burst 1 was told to wait "0.0 s".
    for rate in (1e-3, 7e-4, 180.0, 3.0):
        limiter = LocalRateLimiter(rate_per_minute=rate, burst=1, clock=lambda: now)
        assert limiter.try_acquire("k") == 0.0
        assert limiter.try_acquire("k") == pytest.approx(60.0 / rate)


# --- a 429 that gives no time: one shared guess, doubled per 429 up to a cap ------------
# Planhat's 429 carries no guaranteed Retry-After, and its window resets after 60-120 s
# (planhat/docs source/includes/_intro.md): the guess must grow, never hammer.

GUESS_FIRST, GUESS_CAP = 0.2, 0.8


def elapse(backend: Backend, seconds: float) -> None:
    if backend.clock is not None:
        backend.clock.advance(seconds)
    else:
        time.sleep(seconds)


def test_guessed_pauses_double_per_429_up_to_the_cap(backend: Backend) -> None:
    waits = []
    for _ in range(4):
        wait = backend.limiter.back_off("k", first=GUESS_FIRST, cap=GUESS_CAP)
        waits.append(wait)
        assert backend.another_caller().try_acquire("k") > 0  # everyone waits it out
        elapse(backend, wait + 0.01)

    assert waits == pytest.approx([0.2, 0.4, 0.8, 0.8])


def test_a_429_met_while_a_guessed_pause_is_on_does_not_grow_it(backend: Backend) -> None:
    first = backend.limiter.back_off("k", first=GUESS_FIRST, cap=GUESS_CAP)
    again = backend.another_caller().back_off("k", first=GUESS_FIRST, cap=GUESS_CAP)

    assert first == pytest.approx(0.2)
    assert 0.2 - DRIFT <= again <= 0.2 + 1e-6, again
    elapse(backend, 0.21)
    assert backend.limiter.back_off("k", first=GUESS_FIRST, cap=GUESS_CAP) == pytest.approx(0.4)


def test_the_guess_starts_over_once_the_cap_has_passed_without_a_429(backend: Backend) -> None:
    backend.limiter.back_off("k", first=GUESS_FIRST, cap=GUESS_CAP)
    elapse(backend, 0.2 + GUESS_CAP + 0.05)

    assert backend.limiter.back_off("k", first=GUESS_FIRST, cap=GUESS_CAP) == pytest.approx(0.2)


def test_a_guessed_pause_does_not_shorten_a_longer_one(backend: Backend) -> None:
    backend.limiter.pause("k", 5)

    assert about(5.0)(backend.limiter.back_off("k", first=GUESS_FIRST, cap=GUESS_CAP))
