"""The limiter's arithmetic with a fake clock: windows, estimates, corrections, budgets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from proxy.errors import RateLimited
from proxy.limits import KeyLimits, LimitPolicy, Limits, RateLimiter, estimate_tokens
from proxy.limits.policy import actual_tokens
from proxy.limits.window import SlidingWindow

BODY = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 10}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = datetime(2025, 3, 31, 23, 0, tzinfo=UTC)

    def __call__(self) -> float:
        return self.now


def limiter(
    defaults: Limits, overrides: dict[str, KeyLimits] | None = None
) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(LimitPolicy(defaults, overrides), clock, lambda: clock.wall), clock


def rejected(limiter: RateLimiter, identity: str = "k", body: dict[str, Any] = BODY) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        limiter.admit(identity, "r", body)
    return info.value


def test_window_total_prunes_and_corrects() -> None:
    w = SlidingWindow(60)
    first = w.add(0, 5)
    w.add(30, 7)
    assert w.total(59) == 12
    w.correct(first, 1)
    assert w.total(59) == 8
    assert w.total(60) == 7  # the first left the window
    w.correct(first, 100)  # no effect once outside
    assert w.total(61) == 7
    assert w.wait_for_room(61, limit=10, need=4) == pytest.approx(29)
    assert w.wait_for_room(61, limit=10, need=3) == 0
    assert w.wait_for_room(61, limit=10, need=11) is None


def test_estimate_uses_prompt_chars_max_tokens_and_n() -> None:
    assert estimate_tokens(BODY, 256) == 10 + 10
    assert estimate_tokens({**BODY, "n": 3}, 256) == 10 + 30
    assert estimate_tokens({"messages": [{"role": "user", "content": "abcd"}]}, 256) == 1 + 256
    parts = [{"type": "text", "text": "y" * 80}, {"type": "image_url", "image_url": {"url": "x"}}]
    assert (
        estimate_tokens(
            {"messages": [{"role": "user", "content": parts}], "max_completion_tokens": 5}, 256
        )
        == 20 + 5
    )


def test_actual_tokens_by_route() -> None:
    assert (
        actual_tokens(
            {
                "route": "teacher",
                "teacher_prompt_tokens": 3,
                "teacher_completion_tokens": 4,
                "student_prompt_tokens": 99,
            }
        )
        == 7
    )
    assert actual_tokens({"route": "student", "student_completion_tokens": 2}) == 2
    assert actual_tokens({"route": "none", "status_code": 502}) == 0
    assert actual_tokens({"route": "teacher", "status_code": 502}) == 0
    assert actual_tokens({"route": "teacher", "status_code": 200}) is None


def test_rpm_rejects_with_retry_after_until_the_oldest_leaves() -> None:
    lim, clock = limiter(Limits(rpm=2))
    lim.admit("k", "a", BODY)
    clock.now += 10
    lim.admit("k", "b", BODY)
    clock.now += 5
    error = rejected(lim)
    assert error.status_code == 429 and error.code == "rate_limit_exceeded"
    assert error.headers["retry-after"] == "45"
    assert "2 requests per minute" in error.message
    lim.admit("other", "c", BODY)  # per client
    clock.now += 45
    lim.admit("k", "d", BODY)
    assert lim.stats.rejected["rpm"] == 1 and lim.stats.admitted == 4


def test_tpm_estimate_is_corrected_by_actual_usage() -> None:
    lim, clock = limiter(Limits(tpm=50))
    lim.admit("k", "a", BODY)  # 20 estimated
    lim.admit("k", "b", BODY)  # 40
    error = rejected(lim)  # 60 > 50
    assert "tokens per minute" in error.message and error.headers["retry-after"] == "60"
    lim.settle(
        {"id": "a", "route": "student", "student_prompt_tokens": 2, "student_completion_tokens": 1}
    )
    lim.admit("k", "c", BODY)  # 3 + 20 + 20 = 43
    too_big = rejected(lim, body={**BODY, "max_tokens": 1000})
    assert "Request too large" in too_big.message


def test_override_by_digest_and_explicit_null_lifts_a_default() -> None:
    digest = "AB" * 32
    overrides = {
        f"sha256:{digest}": KeyLimits(rpm=1),
        "cd" * 32: KeyLimits.model_validate({"rpm": None}),
    }
    lim, _ = limiter(Limits(rpm=3, tpm=1000), overrides)
    lim.admit(digest.lower(), "a", BODY)
    rejected(lim, digest.lower())
    for i in range(10):
        lim.admit("cd" * 32, f"x{i}", BODY)  # rpm lifted, tpm default still applies
    assert lim.policy.for_identity("cd" * 32) == Limits(rpm=None, tpm=1000)


def test_spend_budgets_use_cost_and_reset_at_utc_day_and_month() -> None:
    lim, clock = limiter(Limits(usd_per_day=1.0, usd_per_month=1.5))
    lim.admit("k", "a", BODY)
    lim.settle({"id": "a", "route": "teacher", "cost_usd": 1.2})
    error = rejected(lim)
    assert error.code == "insufficient_quota" and error.error_type == "rate_limit_error"
    assert error.headers["retry-after"] == "3600"  # 23:00 UTC -> midnight
    clock.wall = datetime(2025, 4, 1, 0, 0, 1, tzinfo=UTC)  # new day AND new month
    lim.admit("k", "b", BODY)
    lim.settle({"id": "b", "cost_usd": 0.9})
    clock.wall = datetime(2025, 4, 2, 12, 0, tzinfo=UTC)
    lim.admit("k", "c", BODY)
    lim.settle({"id": "c", "cost_usd": 0.7})  # month: 1.6 >= 1.5
    month = rejected(lim)
    assert "Monthly budget" in month.message
    assert int(month.headers["retry-after"]) == (29 * 24 - 12) * 3600


def test_seeded_spend_counts_after_a_restart() -> None:
    lim, _ = limiter(Limits(usd_per_day=1.0))
    lim.seed_spend([("k", 1.0, 1.0)])
    assert rejected(lim).code == "insufficient_quota"


def test_no_limits_tracks_nothing_and_sweep_bounds_memory() -> None:
    lim, clock = limiter(Limits())
    assert not lim.enabled
    lim.admit("k", "a", BODY)
    assert lim.tracked == (0, 0)
    lim2, clock2 = limiter(Limits(rpm=1000))
    for i in range(100):
        lim2.admit(f"client-{i}", f"r{i}", BODY)  # never settled
    assert lim2.tracked == (100, 100)
    clock2.now += 601
    lim2.sweep()
    assert lim2.tracked == (0, 0)
