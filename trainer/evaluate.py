"""Evaluation on the held-out split: agreement with the teacher and confidence per item.

Every model (candidate, incumbent, base) is asked the eval prompts the way it is served:
its own pruned system prompt stripped, its own closed label set as a decoding constraint.
Each answer gets an agreement score against the teacher's (`trainer.agreement`) and a
confidence under every scorer of `trainer.confidence`, so the report shows agreement
as a function of confidence (calibration bins) and the coverage/agreement trade-off at
candidate thresholds: the evidence a promotion gate and a threshold choice need.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainer.agreement import SHORT_ANSWER_WORDS, agreement
from trainer.backends import GenerationBackend
from trainer.breakdown import label_breakdown
from trainer.confidence import SCORERS
from trainer.dataset import TrainRow
from trainer.feedback import eval_gold_summary
from trainer.task import PromptPrefix, strip_prefix

COVERAGE_LEVELS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
CLOSED_SET_SCORER = "sequence_prob"
EXAMPLES_IN_REPORT = 8
UNSCORABLE = -1e9  # confidence of an empty answer (scorers say -inf; JSON cannot)


@dataclass(frozen=True)
class ServedAs:
    """How a model is served by the proxy: what to strip, what to constrain to."""

    prompt_prefix: PromptPrefix | None = None
    closed_set: list[str] | None = None


@dataclass(frozen=True)
class ItemScore:
    id: str
    prediction: str
    reference: str
    agreement: float
    metric: str
    confidence: dict[str, float | None]


def max_new_tokens_for(references: Sequence[str], cap: int) -> int:
    """Room for answers as long as the teacher's (a token is >= ~2 chars in practice)."""
    longest = max((len(r) for r in references), default=0)
    return max(8, min(cap, longest // 2 + 16))


def evaluate_model(
    backend: GenerationBackend,
    rows: Sequence[TrainRow],
    served: ServedAs,
    max_new_tokens: int,
    top_logprobs: int,
) -> dict[str, Any]:
    """Generates for every eval row and summarises agreement and confidence."""
    conversations = [strip_prefix(r.messages, served.prompt_prefix) for r in rows]
    started = time.monotonic()
    generations = backend.generate(conversations, max_new_tokens, top_logprobs, served.closed_set)
    seconds = time.monotonic() - started
    items = []
    for row, gen in zip(rows, generations, strict=True):
        score, metric = agreement(gen.text, row.completion)
        confidence = {name: _finite(fn(gen.logprobs)) for name, fn in SCORERS.items()}
        items.append(ItemScore(row.id, gen.text, row.completion, score, metric, confidence))
    summary = summarize(items)
    summary.update(
        backend=backend.description,
        closed_set=bool(served.closed_set),
        prompt_pruned=served.prompt_prefix is not None and served.prompt_prefix.pruned,
        primary_scorer=CLOSED_SET_SCORER if served.closed_set else None,
        generate_seconds=round(seconds, 2),
        gold=eval_gold_summary(rows, [i.agreement for i in items]),
        by_label=label_breakdown(rows, [i.prediction for i in items], [i.agreement for i in items])
        if served.closed_set
        else None,
    )
    return summary


def summarize(items: Sequence[ItemScore]) -> dict[str, Any]:
    metrics = sorted({i.metric for i in items})
    scorers = sorted({k for i in items for k in i.confidence})
    return {
        "n": len(items),
        "agreement": _mean([i.agreement for i in items]),
        "metric": metric_name(metrics),
        "exact_match": _mean([1.0 if i.agreement == 1.0 else 0.0 for i in items]),
        "mean_confidence": {
            s: _mean([c for i in items if (c := i.confidence.get(s)) is not None]) for s in scorers
        },
        "calibration": {s: calibration_bins(_pairs(items, s)) for s in scorers},
        "coverage": {s: coverage_table(_pairs(items, s)) for s in scorers},
        "examples": [
            {
                "id": i.id,
                "prediction": i.prediction,
                "reference": i.reference,
                "agreement": i.agreement,
                "confidence": i.confidence,
            }
            for i in items[:EXAMPLES_IN_REPORT]
        ],
    }


_METRIC_NOTES = {
    "json_fields": "json_fields (JSON answers)",
    "exact_match": f"exact_match (<= {SHORT_ANSWER_WORDS} words)",
    "token_f1": "token_f1 (longer answers)",
}


def metric_name(metrics: Sequence[str]) -> str:
    """The report's metric: the one used, or each used one with when it applies."""
    if len(metrics) == 1:
        return metrics[0]
    return " / ".join(_METRIC_NOTES.get(m, m) for m in metrics)


def calibration_bins(pairs: Sequence[tuple[float, float]]) -> list[dict[str, Any]]:
    """Equal-count bins by confidence, least confident first: does agreement rise with it?"""
    ordered = sorted(pairs)
    if not ordered:
        return []
    n_bins = min(10, max(1, len(ordered) // 5))
    bins = []
    for b in range(n_bins):
        chunk = ordered[b * len(ordered) // n_bins : (b + 1) * len(ordered) // n_bins]
        if not chunk:
            continue
        bins.append(
            {
                "confidence_min": chunk[0][0],
                "confidence_max": chunk[-1][0],
                "confidence_mean": _mean([c for c, _ in chunk]),
                "agreement": _mean([a for _, a in chunk]),
                "n": len(chunk),
            }
        )
    return bins


def coverage_table(pairs: Sequence[tuple[float, float]]) -> list[dict[str, Any]]:
    """For target coverages: the threshold that serves that share and the agreement there."""
    ordered = sorted(pairs, reverse=True)
    if not ordered:
        return []
    table = []
    for level in COVERAGE_LEVELS:
        threshold = ordered[max(0, math.ceil(level * len(ordered)) - 1)][0]
        served = [a for c, a in ordered if c >= threshold]
        table.append(
            {
                "target_coverage": level,
                "threshold": threshold if threshold > UNSCORABLE else None,
                "coverage": len(served) / len(ordered),
                "agreement": _mean(served),
                "n": len(served),
            }
        )
    return table


def _pairs(items: Sequence[ItemScore], scorer: str) -> list[tuple[float, float]]:
    # Unscorable answers (empty: -inf) sort as least confident.
    return [
        (c if (c := i.confidence.get(scorer)) is not None else UNSCORABLE, i.agreement)
        for i in items
    ]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
