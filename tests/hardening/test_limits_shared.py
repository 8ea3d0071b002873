"""Limits shared by replicas: two limiters on one counter store admit one allowance."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import fakeredis
import pytest

from proxy.errors import RateLimited
from proxy.limits.policy import LimitPolicy, Limits
from proxy.limits.shared import RedisCounters, SharedRateLimiter

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}


def _pair(limits: Limits, now: Callable[[], float]) -> tuple[SharedRateLimiter, ...]:
    server = fakeredis.FakeServer()
    made = []
    for _ in range(2):
        store = RedisCounters(fakeredis.FakeRedis(server=server))
        made.append(SharedRateLimiter(LimitPolicy(limits, {}, 100), store, clock=now))
    return tuple(made)


def _admitted(limiters: tuple[SharedRateLimiter, ...], n: int) -> int:
    ok = 0
    for i in range(n):
        try:
            limiters[i % 2].admit("key-a", f"r{i}", BODY)
            ok += 1
        except RateLimited:
            pass
    return ok


def test_requests_per_minute_hold_across_two_replicas() -> None:
    limiters = _pair(Limits(rpm=10), lambda: 600.0)
    assert _admitted(limiters, 30) == 10
    with pytest.raises(RateLimited) as info:
        limiters[0].admit("key-a", "late", BODY)
    assert info.value.headers["retry-after"] == "60"
    limiters[1].admit("key-b", "other", BODY)  # another key has its own allowance


def test_the_previous_minute_still_counts_in_part() -> None:
    now = [600.0]
    limiters = _pair(Limits(rpm=10), lambda: now[0])
    assert _admitted(limiters, 10) == 10
    now[0] = 690.0  # half of the previous minute is still in the last 60 s
    assert _admitted(limiters, 10) == 5


def test_tokens_are_corrected_and_spend_is_booked_across_replicas() -> None:
    wall = datetime(2026, 12, 1, 12, tzinfo=UTC)
    limiters = _pair(Limits(tpm=1000, usd_per_day=1.0), lambda: 600.0)
    for limiter in limiters:
        limiter._wall = lambda: wall  # type: ignore[method-assign]
    first, second = limiters
    first.admit("key-a", "r1", BODY)
    first.settle({"id": "r1", "cost_usd": 1.5, "teacher_prompt_tokens": 5})
    first._settler.shutdown(wait=True)
    with pytest.raises(RateLimited) as info:
        second.admit("key-a", "r2", BODY)
    assert info.value.code == "insufficient_quota"


def test_an_unreachable_store_admits_uncounted() -> None:
    class Down:
        errors = (ConnectionError,)

        def add(self, key: str, amount: float, ttl: int) -> float:
            raise ConnectionError("redis is down")

        get = seed = add

    limiter = SharedRateLimiter(LimitPolicy(Limits(rpm=1), {}, 100), Down())  # type: ignore[arg-type]
    for i in range(3):
        limiter.admit("key-a", f"r{i}", BODY)  # no 500, no 429: served while it is down
    limiter.seed_spend([("key-a", 1.0, 2.0)])
