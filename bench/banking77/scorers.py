"""Which confidence scorer tells right from wrong student answers best, on the same answers.

The validation requests of every round ask for logprobs, so the driver records every
scorer of `trainer.confidence` on each answer the student gave alone. Ranking those
answers by one scorer, the student's accuracy (against gold) on the top X% is what a
threshold serving X% of the traffic would have served. Same answers, same gold labels,
only the ranking differs, so the comparison between scorers is exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

COVERAGES = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
PRECISION = 0.95


def coverage_curve(items: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """(confidence, correct) pairs -> accuracy of the most confident X%, and its mean (AUC).

    The AUC is the mean of the running accuracy over every prefix of the ranking: 1.0 when
    every right answer outranks every wrong one, the plain accuracy for a random ranking.
    """
    ranked = [correct for _, correct in sorted(items, key=lambda x: x[0], reverse=True)]
    if not ranked:
        return {"n": 0, "auc": None, "accuracy_at": {}}
    at = {}
    for cov in COVERAGES:
        k = max(1, round(cov * len(ranked)))
        at[f"{cov:.1f}"] = sum(ranked[:k]) / k
    running, area, covered = 0, 0.0, 0
    for i, hit in enumerate(ranked, start=1):
        running += hit
        area += running / i
        if running / i >= PRECISION:
            covered = i
    return {
        "n": len(ranked),
        "auc": area / len(ranked),
        "accuracy_at": at,
        # The largest most-confident share still >= 95 % right (an oracle threshold).
        "coverage_at_95": covered / len(ranked),
    }


def compare_scorers(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One curve per scorer over the records that carry scores (None when none do)."""
    scored = [r for r in records if r.get("scores") and r.get("status") == 200]
    if not scored:
        return None
    names = sorted({name for r in scored for name in r["scores"]})
    curves = {}
    for name in names:
        values = [r["scores"].get(name) for r in scored]
        pairs = [
            (float(v), bool(r["correct"]))
            for v, r in zip(values, scored, strict=True)
            if isinstance(v, int | float) and math.isfinite(v)
        ]
        curves[name] = coverage_curve(pairs)
    accuracy = sum(bool(r["correct"]) for r in scored) / len(scored)
    return {"n": len(scored), "accuracy": accuracy, "scorers": curves}


def scorers_by_round(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The comparison for the base student and for the student after each round's run."""
    out: dict[str, Any] = {}
    blocks = [("base", raw.get("base_validation"))]
    blocks += [(f"round {s['round']}", s.get("validation")) for s in raw.get("segments", [])]
    for name, block in blocks:
        result = compare_scorers((block or {}).get("records") or [])
        if result is not None:
            out[name] = result
    return out


def best_scorer(block: Mapping[str, Any]) -> str | None:
    curves = block.get("scorers") or {}
    ranked = [(c["auc"], name) for name, c in curves.items() if c.get("auc") is not None]
    return max(ranked)[1] if ranked else None


def cascade_estimate(curve: Mapping[str, Any], teacher_accuracy: float) -> list[dict[str, float]]:
    """What a threshold at each coverage would serve: the student's top X% (its measured
    accuracy there) plus the teacher on the rest. An estimate from validation answers, not
    traffic the proxy served."""
    out = []
    for cov, acc in (curve.get("accuracy_at") or {}).items():
        share = float(cov)
        out.append({
            "student_share": share,
            "teacher_call_fraction": 1 - share,
            "served_accuracy": share * acc + (1 - share) * teacher_accuracy,
        })  # fmt: skip
    return out
