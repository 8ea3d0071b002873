"""What users' feedback did in a Banking77 run, and 0% vs N% runs side by side.

With ``--feedback-rate R`` the driver corrects a seeded share R of the learning proxy's
teacher answers with the dataset label (``POST /v1/feedback``). This module summarises it
from the raw record: how many were sent, the teacher's accuracy on them as the client saw
it, and the proxy's own measure (the trainer's report of the last round: the teacher's
accuracy on gold rows, and the candidate's on the gold rows of its eval split), next to the
replay teacher's configured accuracy.

    python -m bench.banking77.feedback RUN_A/summary.json RUN_B/summary.json
prints the runs side by side (student accuracy, teacher-call fraction, gold accuracies);
``--feedback-compare RATE`` does it in one run (`feedback_arm`, ``feedback.md``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _learning_records(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for seg in raw.get("segments") or [] for r in seg.get("records") or []]


def _last_report(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The trainer's report.json of the newest round that wrote one."""
    for seg in reversed(raw.get("segments") or []):
        path = ((seg.get("run") or {}).get("raw") or {}).get("report_path")
        if path and Path(path).is_file():
            report = json.loads(Path(path).read_text())
            return report if isinstance(report, dict) else None
    return None


def _share(hits: int, n: int) -> float | None:
    return hits / n if n else None


def feedback_summary(raw: dict[str, Any], feedback_rate: float) -> dict[str, Any]:
    records = _learning_records(raw)
    teacher = [r for r in records if r.get("route") == "teacher"]
    sent = [r for r in teacher if r.get("feedback") == "sent"]
    failed = [r for r in teacher if r.get("feedback") not in (None, "sent")]
    out: dict[str, Any] = {
        "feedback_rate": feedback_rate,
        "teacher_answers": len(teacher),
        "sent": len(sent),
        "failed": len(failed),
        "teacher_accuracy_on_sent": _share(sum(1 for r in sent if r.get("correct")), len(sent)),
        "configured_teacher_accuracy": (raw.get("settings") or {}).get("teacher_accuracy"),
        "proxy_measured": None,
    }
    report = _last_report(raw)
    if report is not None:
        dataset_feedback = (report.get("dataset") or {}).get("feedback") or {}
        candidate = (report.get("evaluation") or {}).get("candidate") or {}
        out["proxy_measured"] = {
            "run_id": report.get("run_id"),
            "gold_rows": dataset_feedback.get("gold_rows"),
            "teacher_gold_accuracy": dataset_feedback.get("teacher_gold_accuracy"),
            "candidate_gold_accuracy": (candidate.get("gold") or {}).get("accuracy"),
        }
    return out


SIDE_BY_SIDE = (
    ("feedback rate", lambda s: (s.get("feedback") or {}).get("feedback_rate", 0.0)),
    ("student-only accuracy", lambda s: s.get("student_only_accuracy")),
    ("served accuracy (final round)", lambda s: s.get("served_accuracy")),
    ("teacher-call fraction (final round)", lambda s: s.get("teacher_call_fraction")),
    ("feedback sent", lambda s: (s.get("feedback") or {}).get("sent")),
    (
        "teacher gold accuracy (proxy)",
        lambda s: (
            ((s.get("feedback") or {}).get("proxy_measured") or {}).get("teacher_gold_accuracy")
            or {}
        ).get("accuracy"),
    ),
    ("configured teacher accuracy", lambda s: (s.get("settings") or {}).get("teacher_accuracy")),
)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "n/a" if value is None else str(value)


def side_by_side(summaries: list[dict[str, Any]], names: list[str]) -> str:
    """A markdown table, one column per run."""
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, get in SIDE_BY_SIDE:
        lines.append(f"| {label} | " + " | ".join(_cell(get(s)) for s in summaries) + " |")
    return "\n".join(lines) + "\n"


def arm_summary(raw: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of the ``--feedback-compare`` arm, computed like the main one's."""
    from bench.banking77.report import build_rounds, build_summary

    arm_raw = {**raw, **raw["feedback_arm"]}
    return build_summary(arm_raw, build_rounds(arm_raw))


def write_side_by_side(raw: dict[str, Any], summary: dict[str, Any], out_dir: Path) -> str:
    """``feedback.md`` next to the report: the main arm and the feedback arm of one run."""
    arm = arm_summary(raw)
    names = [
        f"{(s.get('feedback') or {}).get('feedback_rate') or 0.0:.0%} feedback"
        for s in (summary, arm)
    ]
    text = (
        "# Banking77: feedback side by side\n\n"
        "The same traffic through two fresh learning proxies, one after the other; in the "
        "second, users correct a seeded share of the teacher's answers with the dataset "
        "label (POST /v1/feedback).\n\n" + side_by_side([summary, arm], names)
    )
    (out_dir / "feedback.md").write_text(text)
    (out_dir / "feedback_arm_summary.json").write_text(json.dumps(arm, indent=2, default=str))
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Banking77 runs side by side (feedback)")
    parser.add_argument("summaries", type=Path, nargs="+", help="summary.json of each run")
    args = parser.parse_args(argv)
    summaries = [json.loads(p.read_text()) for p in args.summaries]
    print(side_by_side(summaries, [p.parent.name for p in args.summaries]), end="")


if __name__ == "__main__":
    main()
