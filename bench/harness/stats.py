"""Pure aggregation of request records: accuracy, routing, cost and latency per segment.

Records are the dicts of `driver.RequestRecord` (so a saved raw run can be re-reported).
Prices are USD per million tokens.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Prices:
    """Token prices of both upstreams (USD per million tokens)."""

    teacher_in: float = 2.5
    teacher_out: float = 10.0
    student_in: float = 0.05
    student_out: float = 0.05

    def teacher(self, prompt: int, completion: int) -> float:
        return (prompt * self.teacher_in + completion * self.teacher_out) / 1e6

    def student(self, prompt: int, completion: int) -> float:
        return (prompt * self.student_in + completion * self.student_out) / 1e6

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def accuracy(records: Iterable[Record]) -> float | None:
    """Share of records whose answer normalised to the gold label."""
    rows = list(records)
    return sum(1 for r in rows if r.get("correct")) / len(rows) if rows else None


def _tokens(rec: Record) -> tuple[int, int]:
    return int(rec.get("prompt_tokens") or 0), int(rec.get("completion_tokens") or 0)


def latency_by_route(records: Iterable[Record]) -> dict[str, dict[str, float | int | None]]:
    """p50/p95 of client-side latency (ms) per route header value."""
    groups: dict[str, list[float]] = {}
    for rec in records:
        groups.setdefault(str(rec.get("route") or "none"), []).append(float(rec["latency_ms"]))
    return {
        route: {"n": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95)}
        for route, v in sorted(groups.items())
    }


def student_cost(records: Iterable[Record], prices: Prices) -> float:
    """Student compute for every request that reached it (also the ones that fell back).

    A fallback's student attempt is not visible to the client; its size is taken as the
    teacher answer's (same prompt, an answer of about the same length).
    """
    return sum(prices.student(*_tokens(r)) for r in records if r.get("route") is not None)


def teacher_cost_from_usage(records: Iterable[Record], prices: Prices) -> float:
    """Teacher spend seen by the client (misses shadow calls; prefer the teacher's own count)."""
    return sum(prices.teacher(*_tokens(r)) for r in records if r.get("route") == "teacher")


def all_teacher_cost(
    records: Iterable[Record], baseline: dict[int, float], prices: Prices
) -> float:
    """What the same requests cost with the teacher alone (measured per query when known)."""
    total = 0.0
    for rec in records:
        known = baseline.get(int(rec["index"]))
        total += known if known is not None else prices.teacher(*_tokens(rec))
    return total


def baseline_costs(teacher_records: Iterable[Record], prices: Prices) -> dict[int, float]:
    """Per traffic index, the cost of the teacher's own answer in the all-teacher baseline."""
    return {int(r["index"]): prices.teacher(*_tokens(r)) for r in teacher_records if r["status"]}


def segment_summary(
    records: Sequence[Record],
    prices: Prices,
    baseline: dict[int, float],
    teacher_spend: float | None = None,
    proxy_cost: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Routing, accuracy, cost and latency of one stretch of traffic.

    `teacher_spend` is the teacher's own accounting for the stretch (includes shadow
    calls and retries); without it the spend is computed from the usage clients saw.
    `proxy_cost` is the proxy's own accounting (cost_usd, counterfactual_cost_usd); its
    ratio is the headline `cost_ratio` when present, the measured one otherwise.
    """
    n = len(records)
    teacher_calls = sum(1 for r in records if r.get("route") == "teacher")
    teacher = (
        teacher_spend if teacher_spend is not None else teacher_cost_from_usage(records, prices)
    )
    actual = teacher + student_cost(records, prices)
    counterfactual = all_teacher_cost(records, baseline, prices)
    measured_ratio = actual / counterfactual if counterfactual else None
    proxy_ratio = None
    if proxy_cost and proxy_cost.get("counterfactual_cost_usd"):
        proxy_ratio = proxy_cost["cost_usd"] / proxy_cost["counterfactual_cost_usd"]
    return {
        "requests": n,
        "teacher_calls": teacher_calls,
        "student_served": sum(1 for r in records if r.get("route") == "student"),
        "errors": sum(1 for r in records if r.get("error")),
        "reasons": dict(Counter(str(r.get("reason")) for r in records if r.get("reason"))),
        "fallback_rate": teacher_calls / n if n else None,
        "served_accuracy": accuracy(records),
        "cost_usd": actual,
        "teacher_cost_usd": teacher,
        "all_teacher_cost_usd": counterfactual,
        "cost_ratio": proxy_ratio if proxy_ratio is not None else measured_ratio,
        "cost_ratio_measured": measured_ratio,
        "cost_ratio_proxy": proxy_ratio,
        "proxy_cost_usd": (proxy_cost or {}).get("cost_usd"),
        "proxy_counterfactual_cost_usd": (proxy_cost or {}).get("counterfactual_cost_usd"),
        "latency_ms": latency_by_route(records),
    }


def rolling(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over up to `window` values at each position."""
    out: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
