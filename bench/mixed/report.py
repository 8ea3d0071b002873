"""Turns a mixed run's raw record into results/: summary.json, rounds.json, results.md and
the plots (routing.png, quality.png).

    python -m bench.mixed.report bench/mixed/work/<run>/raw.json [--out DIR]

Everything is derived from the raw record (every request as the client saw it), so a
report can be rebuilt without rerunning anything. Per task and overall (the harness's
`report_tasks`), over all the learning traffic and over its final quarter (the goals).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.harness.report_tasks import attach_thresholds, proxy_thresholds, task_table
from bench.harness.stats import Prices
from bench.harness.task import Record, Task
from bench.mixed.config import build_tasks
from bench.mixed.goals import goals
from bench.mixed.report_md import render_markdown
from bench.mixed.report_plots import write_plots

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _by_task(records: list[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        groups[str(r.get("task"))].append(r)
    return groups


def student_alone(tasks: dict[str, Task], block: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each task's quality of the student alone on its validation queries."""
    if not block:
        return None
    groups = _by_task(block["records"])
    return {n: t.quality(groups[n]) for n, t in tasks.items() if groups.get(n)}


def build_rounds(raw: dict[str, Any], tasks: dict[str, Task]) -> list[dict[str, Any]]:
    """One row per traffic segment: routing per task, the run, the student alone after it."""
    rows: list[dict[str, Any]] = [
        {
            "round": 0,
            "requests_so_far": 0,
            "student_alone": student_alone(tasks, raw.get("base_validation")),
        }
    ]
    so_far = 0
    for seg in raw.get("segments") or []:
        so_far += len(seg["records"])
        groups = _by_task(seg["records"])
        rows.append({
            "round": seg["round"],
            "requests_so_far": so_far,
            "teacher_call_fraction": {
                n: sum(1 for r in recs if r.get("route") == "teacher") / len(recs)
                for n, recs in groups.items()
            },
            "run_status": (seg.get("run") or {}).get("status"),
            "student_version": seg.get("student_version"),
            "student_alone": student_alone(tasks, seg.get("validation")),
        })  # fmt: skip
    return rows


def build_summary(raw: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    tasks = build_tasks([n for n in raw["tasks"]])
    prices = Prices(**raw["prices"])
    teacher = raw["teacher_baseline"]["records"]
    learning = [r for seg in raw.get("segments") or [] for r in seg["records"]]
    start = len(learning) - len(learning) // 4
    thresholds = proxy_thresholds(raw.get("proxy_tasks"), raw.get("calibration_final"))
    every, quarter = (
        task_table(tasks, part, teacher, prices) for part in (learning, learning[start:])
    )
    for table in (every, quarter):
        attach_thresholds(table, thresholds)
    quarter["first_request"] = start
    summary: dict[str, Any] = {
        "benchmark": "mixed",
        "requests": len(learning),
        "minutes": raw.get("minutes"),
        "date": raw.get("date"),
        "machine": raw.get("machine"),
        "settings": raw.get("settings"),
        "prices_usd_per_million_tokens": raw.get("prices"),
        "tasks": raw.get("tasks"),
        "all_teacher": task_table(tasks, teacher, teacher, prices),
        "learning": every,
        "final_quarter": quarter,
        "student_alone_final": rows[-1]["student_alone"] if rows else None,
        "proxy_thresholds": thresholds,
        "rounds": len(rows) - 1,
        "notes": raw.get("notes", []),
    }
    summary["goals"] = goals(summary)
    return summary


def write_report(raw: dict[str, Any], out_dir: Path = DEFAULT_OUT) -> dict[str, Any]:
    """Writes summary.json, rounds.json, results.md and the plots; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = build_tasks([n for n in raw["tasks"]])
    rows = build_rounds(raw, tasks)
    summary = build_summary(raw, rows)
    try:
        summary["plots"] = write_plots(raw, rows, out_dir)
    except ImportError as exc:  # matplotlib is a dev dependency: the numbers do not need it
        summary["plots"] = f"not drawn: {exc}"
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out_dir / "rounds.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    (out_dir / "results.md").write_text(render_markdown(summary, rows))
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rebuild the mixed report from raw.json")
    parser.add_argument("raw", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    summary = write_report(json.loads(args.raw.read_text()), args.out)
    print(json.dumps({k: summary[k] for k in ("requests", "minutes")}))


if __name__ == "__main__":
    main()
