"""Where the student is weak, in a run's report: per label of a closed-set task, on the
held-out split (agreement with the label, gold accuracy) and the labels it never answers.

The live counterpart, with the share of traffic the student serves per label or tag, is
`proxy.observability.breakdown` (`distill stats --by label|tag`). No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainer.agreement import normalize_answer

WEAKEST_IN_SUMMARY = 5


def label_breakdown(
    rows: Sequence[Any], predictions: Sequence[str], scores: Sequence[float]
) -> dict[str, Any]:
    """Per reference label: rows, mean agreement, gold rows and their accuracy; and the
    reference labels the model never answered (not once, on any row)."""
    groups: dict[str, dict[str, Any]] = {}
    answered = {normalize_answer(p) for p in predictions}
    for row, score in zip(rows, scores, strict=True):
        g = groups.setdefault(
            row.completion.strip(), {"n": 0, "sum": 0.0, "gold_n": 0, "gold_sum": 0.0}
        )
        g["n"] += 1
        g["sum"] += score
        if row.gold:
            g["gold_n"] += 1
            g["gold_sum"] += score
    labels = [
        {
            "label": label,
            "n": g["n"],
            "agreement": g["sum"] / g["n"],
            "gold_n": g["gold_n"],
            "gold_accuracy": g["gold_sum"] / g["gold_n"] if g["gold_n"] else None,
        }
        for label, g in groups.items()
    ]
    labels.sort(key=lambda x: (x["agreement"], -x["n"], x["label"]))
    never = sorted(label for label in groups if normalize_answer(label) not in answered)
    return {"labels": labels, "never_answered": never}


def weak_label_lines(evaluation: dict[str, Any] | None) -> list[str]:
    """The candidate's weakest labels and those it never answered, for the run summary."""
    candidate = (evaluation or {}).get("candidate")
    by_label = candidate.get("by_label") if isinstance(candidate, dict) else None
    if not by_label or not by_label.get("labels"):
        return []
    weakest = [x for x in by_label["labels"] if x["agreement"] < 1.0][:WEAKEST_IN_SUMMARY]
    lines = []
    if weakest:
        lines.append(
            "weakest labels (candidate): "
            + ", ".join(f"{x['label']} {x['agreement']:.2f} (n={x['n']})" for x in weakest)
        )
    never = by_label.get("never_answered") or []
    if never:
        shown = ", ".join(never[:10]) + (", ..." if len(never) > 10 else "")
        lines.append(f"labels the candidate never answered ({len(never)}): {shown}")
    return lines
