"""What the learning proxy's calibration did in a benchmark run, and what its evidence was.

Per round: the calibration of the serving version at the end of the segment (status,
threshold, coverage the calibration estimated, its lower bound on agreement, the best target
its evidence supported) next to the share the student actually served. Per promotion: the
candidate's answers on the calibration set (``eval_items.json`` in the proxy's run dir),
judged both against the teacher (agreement, what calibration sees) and against gold, with
the teacher's own accuracy on the same queries: the agreement-versus-gold gap in one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.harness.examples import Example
from bench.tasks.banking77 import load_categories, load_examples, normalise_answer


def _current(calibration: dict[str, Any] | None) -> dict[str, Any] | None:
    """The serving version's entry of a GET /admin/calibration body."""
    if not calibration:
        return None
    for version, entry in (calibration.get("versions") or {}).items():
        if entry.get("role") == "current":
            evidence = entry.get("evidence") or {}
            return {
                "version": version,
                "mode": calibration.get("mode"),
                "target": calibration.get("target_agreement"),
                "threshold": entry.get("threshold"),
                "status": evidence.get("status"),
                "pairs": evidence.get("pairs"),
                "pairs_used": evidence.get("pairs_used"),
                "agreement_lower": evidence.get("lower"),
                "coverage_estimate": evidence.get("coverage"),
                "best": evidence.get("best"),
                "sources": evidence.get("sources"),
            }
    return None


def calibration_by_round(raw: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for seg in raw.get("segments", []):
        records = seg.get("records") or []
        served = sum(1 for r in records if r.get("route") == "student")
        out.append(
            {
                "round": seg.get("round"),
                "during_segment": _current(seg.get("calibration_end")),
                "after_run": _current(seg.get("calibration_after_run")),
                "served_share": served / len(records) if records else None,
            }
        )
    return out


def evidence_check(
    run_dirs: list[Path], examples: list[Example] | None = None
) -> list[dict[str, Any]]:
    """Agreement vs gold on each promoted version's calibration-set answers."""
    examples = examples if examples is not None else load_examples()
    labels = load_categories()
    gold = {ex.text: ex.label for ex in examples}
    out = []
    for run_dir in run_dirs:
        path = run_dir / "eval_items.json"
        if not path.is_file():
            continue
        items = [i for i in json.loads(path.read_text()) if i.get("query") in gold]
        if not items:
            continue
        n = len(items)

        def right(text: str | None, query: str) -> bool:
            return normalise_answer(text, labels) == gold[query]

        student = sum(right(i["answer"], i["query"]) for i in items)
        teacher = sum(right(i["reference"], i["query"]) for i in items)
        agree = sum(bool(i["agree"]) for i in items)
        both_right = sum(right(i["answer"], i["query"]) and right(i["reference"], i["query"])
                         for i in items)  # fmt: skip
        out.append(
            {
                "run": run_dir.name,
                "n": n,
                "agreement_with_teacher": agree / n,
                "student_gold_accuracy": student / n,
                "teacher_gold_accuracy": teacher / n,
                # If agreement were only "both right", it would be this:
                "both_right": both_right / n,
            }
        )
    return out


def run_reports(run_dirs: list[Path]) -> dict[str, dict[str, Any]]:
    """What each training run did (from its report.json): rows, epochs, seconds."""
    out: dict[str, dict[str, Any]] = {}
    for run_dir in run_dirs:
        try:
            report = json.loads((run_dir / "report.json").read_text())
        except (OSError, ValueError):
            continue
        dataset, training = report.get("dataset") or {}, report.get("training") or {}
        config = report.get("config") or {}
        out[run_dir.name] = {
            "train_rows": dataset.get("train_rows"),
            "eval_rows": dataset.get("eval_rows"),
            "calibration_rows": dataset.get("calibration_rows"),
            "closed_set_labels": len(report.get("closed_set") or dataset.get("closed_set") or []),
            "epochs": config.get("epochs"),
            "warm_started": training.get("warm_started"),
            "train_seconds": training.get("train_seconds"),
            "seconds_per_100_rows": training.get("seconds_per_100_rows"),
            "durations": report.get("durations"),
        }
    return out
