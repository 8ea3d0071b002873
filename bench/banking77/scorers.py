"""Which confidence scorer tells right from wrong student answers best, measured offline.

After a run, the learning proxy's DuckDB log holds the student's answer with its token
logprobs for every request it asked the student (served or not). Each such row is matched
to its gold label by the customer's query, every scorer of `proxy.serving.confidence` is
recomputed on it, and for each scorer the rows are ranked by confidence: the student's
accuracy on the top X% is what a threshold serving X% of the traffic would have served.
Same answers, same rows, only the ranking differs, so the comparison is exact.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from bench.banking77.data import load_categories, load_examples, normalise_answer
from proxy.serving.confidence import SCORERS, score_response

COVERAGES = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
QUERY = """
SELECT student_version, tag, CAST(request_json AS VARCHAR), CAST(student_response_json AS VARCHAR)
FROM requests
WHERE student_response_json IS NOT NULL AND student_version IS NOT NULL
"""


@dataclass(frozen=True, slots=True)
class Scored:
    """One student answer: right or wrong against gold, and its confidence per scorer."""

    version: str
    tag: str | None
    correct: bool
    scores: dict[str, float]


def _user_text(request: Mapping[str, Any]) -> str | None:
    users = [m for m in request.get("messages") or [] if m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    return content.strip() if isinstance(content, str) else None


def _answer(response: Mapping[str, Any]) -> str | None:
    choices = response.get("choices") or []
    message = choices[0].get("message") if choices else None
    return message.get("content") if isinstance(message, dict) else None


def load_scored(db: Path, gold: Mapping[str, str], labels: list[str]) -> list[Scored]:
    """Student answers in the log whose query has a gold label (others are skipped)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(QUERY).fetchall()
    finally:
        con.close()
    out = []
    for version, tag, request_text, response_text in rows:
        request, response = json.loads(request_text), json.loads(response_text)
        text = _user_text(request)
        if text is None or text not in gold:
            continue
        predicted = normalise_answer(_answer(response), labels)
        scores = {name: score_response(name, response) for name in SCORERS}
        out.append(Scored(str(version), tag, predicted == gold[text], scores))
    return out


def coverage_curve(items: Iterable[Scored], scorer: str) -> dict[str, Any]:
    """Accuracy of the most confident X% under one scorer, and the mean over X (AUC)."""
    ranked = sorted(items, key=lambda s: s.scores[scorer], reverse=True)
    if not ranked:
        return {"n": 0, "auc": None, "accuracy_at": {}}
    hits = [s.correct for s in ranked]
    at = {}
    for cov in COVERAGES:
        k = max(1, round(cov * len(hits)))
        at[f"{cov:.1f}"] = sum(hits[:k]) / k
    # Area under accuracy-vs-coverage, one point per row: 1.0 is a perfect ranking.
    running, area = 0, 0.0
    for i, hit in enumerate(hits, start=1):
        running += hit
        area += running / i
    return {"n": len(hits), "auc": area / len(hits), "accuracy_at": at}


def compare_scorers(items: list[Scored]) -> dict[str, Any]:
    """Per student version (newest adapters are most interesting), a curve per scorer."""
    by_version: dict[str, list[Scored]] = {}
    for item in items:
        by_version.setdefault(item.version, []).append(item)
    out: dict[str, Any] = {}
    for version, group in by_version.items():
        finite = [g for g in group if all(math.isfinite(v) for v in g.scores.values())]
        out[version] = {
            "n": len(group),
            "accuracy": sum(g.correct for g in group) / len(group),
            "scorers": {name: coverage_curve(finite, name) for name in SCORERS},
        }
    return out


def best_scorer(version_block: Mapping[str, Any]) -> str | None:
    curves = version_block.get("scorers") or {}
    ranked = [(c["auc"], name) for name, c in curves.items() if c.get("auc") is not None]
    return max(ranked)[1] if ranked else None


def scorer_report(db: Path) -> dict[str, Any]:
    """`compare_scorers` over a learning proxy's log, gold labels from the dataset."""
    gold = {ex.text.strip(): ex.label for ex in load_examples()}
    return compare_scorers(load_scored(db, gold, load_categories()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Add the offline scorer comparison to a run's raw.json"
    )
    parser.add_argument("work_dir", type=Path, help="bench/banking77/work/<run>")
    args = parser.parse_args(argv)
    raw_path = args.work_dir / "raw.json"
    raw = json.loads(raw_path.read_text())
    raw["scorers"] = scorer_report(args.work_dir / "learning" / "distill.duckdb")
    raw_path.write_text(json.dumps(raw, default=str))
    for version, block in raw["scorers"].items():
        print(version, block["n"], f"{block['accuracy']:.3f}", best_scorer(block))


if __name__ == "__main__":
    main()
