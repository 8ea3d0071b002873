"""Calibration: the confidence threshold as a derived value, from a quality target.

The guarantee, in one sentence: **with probability at least ``calibration_confidence``
(95 % by default), the student's agreement with the teacher on the requests it serves is at
least ``target_agreement``**, provided future requests resemble the calibration pairs.

How: each student version gets the lowest confidence ``t`` that survives *fixed-sequence
testing* (Learn-then-Test, Angelopoulos et al. 2021). Candidate thresholds are ordered from
the most confident down; at each one the null hypothesis "the disagreement rate among pairs
with confidence >= t exceeds 1 - target" is tested with an exact binomial test at level
``delta = 1 - calibration_confidence``; the walk stops at the first hypothesis it cannot
reject and serves from the last one it did. Because every test is run at the full ``delta``
but only while all earlier ones rejected, the family-wise error stays at ``delta``: the
search over thresholds does not inflate the risk (scanning every threshold and keeping the
lowest that passes, as a plain confidence interval per threshold would, does). The candidate
thresholds depend only on the confidences, never on which pairs agree, which keeps the tests
valid; the walk starts where a fifth of the pairs (at least ``calibration_min_pairs``) are
admitted, and candidates are thinned to at most `MAX_TESTS` so a noisy stretch cannot stop
the walk one pair at a time.

When no threshold passes, the version stays uncalibrated (threshold ``None``): the student
serves nothing and keeps logging its answers beside the teacher's. The result then carries
the best target the evidence would support (the highest one-sided lower bound on agreement
over the candidate thresholds, with its coverage), so a user sees what is reachable.

A pair agrees when `trainer.agreement.agreement` scores it >= `AGREE_MIN_SCORE`: normalised
exact match for short teacher answers (<= 8 words: labels, yes/no), token-level F1 >= 0.8 for
longer ones (two correct paragraphs rarely match exactly), the share of matching leaf fields
>= 0.8 for JSON answers (`json_fields`).

Shadow-sampled pairs stand for ``1 / shadow_rate`` served requests each (they are a random
sample of the confidently served traffic). That weight counts in the coverage estimate, not
in the tests: at or above the serving threshold every logged pair is a shadow sample, so
within that region they are a uniform sample and an unweighted count is unbiased, while
weighting them 10:1 against the held-out and leave-one-out pairs cut the effective sample
(Kish) to a third and closed calibrated versions in the Banking77 run. Below the serving
threshold the served part is under-represented, which pulls the estimate toward the less
confident pairs: the conservative side. Pairs may still carry a `weight` (the tests then use
Kish's effective sample size, exact for unweighted pairs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

from proxy.loop.binomial import binom_cdf, clopper_pearson_upper
from trainer.agreement import AGREE_MIN_SCORE, agreement

MAX_TESTS = 20
"""Most candidate thresholds (the walk stops at the first it cannot pass: fewer, coarser
steps make a noisy stretch less likely to end it early)."""
METHOD = "fixed_sequence_binomial"


def agrees(student_text: str, teacher_text: str) -> bool:
    score, _metric = agreement(student_text, teacher_text)
    return score >= AGREE_MIN_SCORE


@dataclass(frozen=True)
class Pair:
    """One student answer with its confidence, judged against the teacher's answer."""

    confidence: float
    agree: bool
    weight: float = 1.0
    stands_for: float = 1.0
    """Requests of the live traffic this pair stands for (1 / shadow rate for a shadow
    sample): the coverage estimate only."""


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold and its evidence (shown by GET /admin/calibration)."""

    status: str
    """`calibrated`, `not_enough_pairs` or `target_not_reached`; `held` (`Calibrator`): a
    serving version below the target but within the hysteresis keeps its threshold."""
    threshold: float | None
    target: float
    level: float
    scorer: str
    pairs: int
    """Pairs considered (all confidences)."""
    pairs_used: int = 0
    """Pairs at or above the threshold (the evidence for it)."""
    agreement: float | None = None
    lower: float | None = None
    """One-sided lower confidence bound (level `level`) on agreement at the threshold."""
    upper: float | None = None
    coverage: float | None = None
    """Weighted share of pairs at or above the threshold: the traffic the student takes."""
    sources: dict[str, int] | None = None
    computed_at: str = ""
    method: str = METHOD
    tests: int = 0
    """Candidate thresholds tested (most confident first)."""
    best: dict[str, Any] | None = None
    """The best target the evidence supports: the highest one-sided lower bound on agreement
    over the candidate thresholds, with its threshold and coverage (shown when the target is
    out of reach; it is a description, not a guarantee: it is a maximum over thresholds)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def z_value(level: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - level) / 2)


def wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval for a proportion `p` observed over `n` (possibly effective) trials."""
    if n <= 0:
        return 0.0, 1.0
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class _Running:
    count: int = 0
    w: float = 0.0
    w2: float = 0.0
    wa: float = 0.0
    cover: float = 0.0

    def add(self, pair: Pair) -> None:
        self.count += 1
        self.cover += pair.stands_for
        self.w += pair.weight
        self.w2 += pair.weight * pair.weight
        self.wa += pair.weight if pair.agree else 0.0

    @property
    def p(self) -> float:
        return self.wa / self.w if self.w else 0.0

    @property
    def n_eff(self) -> float:
        return self.w * self.w / self.w2 if self.w2 else 0.0


@dataclass(frozen=True)
class _Test:
    """One candidate threshold with the evidence at or above it."""

    threshold: float
    count: int
    agreement: float
    n_eff: float
    cover: float
    """Live requests the pairs at or above the threshold stand for (`Pair.stands_for`)."""

    def disagreements(self) -> float:
        return (1.0 - self.agreement) * self.n_eff

    def p_value(self, alpha: float) -> float:
        """P(so few disagreements | true disagreement rate = alpha): small rejects H0."""
        return binom_cdf(self.disagreements(), self.n_eff, alpha)

    def lower(self, delta: float) -> float:
        """One-sided lower confidence bound on the agreement rate."""
        return 1.0 - clopper_pearson_upper(self.disagreements(), self.n_eff, delta)

    def upper(self, delta: float) -> float:
        return clopper_pearson_upper(self.agreement * self.n_eff, self.n_eff, delta)


def _candidates(ranked: Sequence[Pair], min_pairs: int) -> list[_Test]:
    """Thresholds to test, most confident first: ends of tie groups with >= min_pairs pairs,
    at least `step` pairs apart (the last group always). Depends on confidences only."""
    step = max(1, math.ceil(len(ranked) / MAX_TESTS))
    run = _Running()
    out: list[_Test] = []
    last_count = -step
    for i, pair in enumerate(ranked):
        run.add(pair)
        if i + 1 < len(ranked) and ranked[i + 1].confidence == pair.confidence:
            continue  # a threshold admits every pair with that exact confidence
        final = i + 1 == len(ranked)
        if run.count < max(1, min_pairs) or (run.count - last_count < step and not final):
            continue
        last_count = run.count
        out.append(_Test(pair.confidence, run.count, run.p, run.n_eff, run.cover))
    return out


def _start(min_pairs: int, n: int) -> int:
    """Admitted pairs at which the walk begins: a fifth of the pairs, at least min_pairs.

    A walk that starts with too few pairs fails at once (no bound is tight on 30 pairs), one
    that starts too deep gives away coverage. In simulations (tests/loop/test_calibration_
    guarantee.py) a fifth beat a fixed count and Bonferroni-split multi-start walks; it
    depends on the number of pairs only, so the tests stay valid."""
    return max(1, min_pairs, n // 5)


def _walk(tests: Sequence[_Test], alpha: float, delta: float) -> _Test | None:
    """Fixed-sequence testing: the last threshold rejected before the first failure."""
    passed = None
    for test in tests:
        if test.p_value(alpha) > delta:
            break
        passed = test
    return passed


def choose_threshold(
    pairs: Sequence[Pair],
    *,
    target: float,
    min_pairs: int,
    level: float = 0.95,
    scorer: str = "",
    sources: dict[str, int] | None = None,
) -> Calibration:
    """The lowest threshold that survives fixed-sequence testing (see the module docstring)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    ranked = sorted(
        (p for p in pairs if math.isfinite(p.confidence)), key=lambda p: p.confidence, reverse=True
    )
    total_w = sum(p.stands_for for p in pairs)
    delta, alpha = 1.0 - level, 1.0 - target
    tests = _candidates(ranked, min_pairs)
    start = _start(min_pairs, len(ranked))
    chosen = _walk([t for t in tests if t.count >= start], alpha, delta)
    best: _Test | None = None
    best_lower = -1.0
    for test in tests:
        lower = test.lower(delta)
        if lower > best_lower:
            best, best_lower = test, lower
    common: dict[str, Any] = {
        "target": target, "level": level, "scorer": scorer, "pairs": len(pairs),
        "sources": sources, "computed_at": now, "tests": len(tests),
        "best": None if best is None else {
            "agreement_lower": round(best_lower, 4), "threshold": best.threshold,
            "coverage": best.cover / total_w if total_w else None, "pairs_used": best.count,
        },
    }  # fmt: skip

    def result(status: str, test: _Test, threshold: float | None) -> Calibration:
        return Calibration(
            status, threshold, pairs_used=test.count, agreement=test.agreement,
            lower=test.lower(delta), upper=test.upper(delta),
            coverage=test.cover / total_w if total_w else None, **common,
        )  # fmt: skip

    if chosen is not None:
        return result("calibrated", chosen, chosen.threshold)
    if not tests:
        return Calibration("not_enough_pairs", None, pairs_used=len(ranked), **common)
    return result("target_not_reached", tests[-1], None)


def pairs_from_texts(
    rows: Iterable[tuple[float | None, str | None, str | None, bool]], shadow_rate: float
) -> list[Pair]:
    """Logged rows ``(confidence, student_text, teacher_text, shadow)`` as pairs; a shadow
    sample stands for ``1 / shadow_rate`` requests (the module docstring says why it is not
    weighted)."""
    stands_for = 1.0 / shadow_rate if shadow_rate > 0 else 1.0
    out = []
    for confidence, student, teacher, shadow in rows:
        if confidence is None or student is None or teacher is None:
            continue
        out.append(
            Pair(
                float(confidence),
                agrees(student, teacher),
                stands_for=stands_for if shadow else 1.0,
            )
        )
    return out
