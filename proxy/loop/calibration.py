"""Calibration: the confidence threshold as a derived value, from a quality target.

In calibration mode (``target_agreement`` set) each student version gets the LOWEST
confidence ``t`` such that, among the (student, teacher) pairs whose student confidence is
``>= t``, the agreement with the teacher is at least the target with high confidence: the
lower end of a Wilson score interval (level ``calibration_confidence``, 95 % two-sided by
default) must reach the target, over at least ``calibration_min_pairs`` pairs. Requests at or
above ``t`` are the ones the student serves, so that set is exactly where the target must
hold. Without enough pairs, or when no threshold reaches the target, the version stays
uncalibrated (threshold ``None``): the student serves nothing and keeps logging its answers
beside the teacher's, which are the pairs the next calibration uses.

A pair agrees when `trainer.agreement.agreement` scores it >= `AGREE_MIN_SCORE`: normalised
exact match for short teacher answers (<= 8 words: labels, yes/no), token-level F1 >= 0.8 for
longer ones (two correct paragraphs rarely match exactly).

Shadow-sampled pairs stand for ``1 / shadow_rate`` served requests each (they are a random
sample of the confidently served traffic), so they are weighted by that and the sample size
is Kish's effective n.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

from trainer.agreement import agreement

AGREE_MIN_SCORE = 0.8


def agrees(student_text: str, teacher_text: str) -> bool:
    score, _metric = agreement(student_text, teacher_text)
    return score >= AGREE_MIN_SCORE


@dataclass(frozen=True)
class Pair:
    """One student answer with its confidence, judged against the teacher's answer."""

    confidence: float
    agree: bool
    weight: float = 1.0


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold and its evidence (shown by GET /admin/calibration)."""

    status: str
    """`calibrated`, `not_enough_pairs` or `target_not_reached`."""
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
    upper: float | None = None
    coverage: float | None = None
    """Weighted share of pairs at or above the threshold: the traffic the student takes."""
    sources: dict[str, int] | None = None
    computed_at: str = ""

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

    def add(self, pair: Pair) -> None:
        self.count += 1
        self.w += pair.weight
        self.w2 += pair.weight * pair.weight
        self.wa += pair.weight if pair.agree else 0.0

    @property
    def p(self) -> float:
        return self.wa / self.w if self.w else 0.0

    @property
    def n_eff(self) -> float:
        return self.w * self.w / self.w2 if self.w2 else 0.0


def choose_threshold(
    pairs: Sequence[Pair],
    *,
    target: float,
    min_pairs: int,
    level: float = 0.95,
    scorer: str = "",
    sources: dict[str, int] | None = None,
) -> Calibration:
    """The lowest threshold whose served set meets the target (see the module docstring)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    finite = sorted(
        (p for p in pairs if math.isfinite(p.confidence)), key=lambda p: p.confidence, reverse=True
    )
    total_w = sum(p.weight for p in pairs)
    common: dict[str, Any] = {
        "target": target,
        "level": level,
        "scorer": scorer,
        "pairs": len(pairs),
        "sources": sources,
        "computed_at": now,
    }
    z = z_value(level)
    run = _Running()
    best: Calibration | None = None
    for i, pair in enumerate(finite):
        run.add(pair)
        if i + 1 < len(finite) and finite[i + 1].confidence == pair.confidence:
            continue  # a threshold admits every pair with that exact confidence
        if run.count < min_pairs:
            continue
        lower, upper = wilson(run.p, run.n_eff, z)
        if lower >= target:
            best = Calibration(
                "calibrated",
                pair.confidence,
                pairs_used=run.count,
                agreement=run.p,
                lower=lower,
                upper=upper,
                coverage=run.w / total_w if total_w else None,
                **common,
            )
    if best is not None:
        return best
    if run.count < min_pairs:
        return Calibration("not_enough_pairs", None, pairs_used=run.count, **common)
    lower, upper = wilson(run.p, run.n_eff, z)
    return Calibration(
        "target_not_reached",
        None,
        pairs_used=run.count,
        agreement=run.p,
        lower=lower,
        upper=upper,
        coverage=1.0 if total_w else None,
        **common,
    )


def pairs_from_texts(
    rows: Iterable[tuple[float | None, str | None, str | None, bool]], shadow_rate: float
) -> list[Pair]:
    """Logged rows ``(confidence, student_text, teacher_text, shadow)`` as weighted pairs."""
    shadow_weight = 1.0 / shadow_rate if shadow_rate > 0 else 1.0
    out = []
    for confidence, student, teacher, shadow in rows:
        if confidence is None or student is None or teacher is None:
            continue
        weight = shadow_weight if shadow else 1.0
        out.append(Pair(float(confidence), agrees(student, teacher), weight))
    return out
