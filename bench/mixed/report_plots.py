"""PNG plots of a mixed run: each task's teacher share over the traffic, and each task's
quality (served and the student alone) over the rounds."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.harness.plots import pyplot
from bench.harness.stats import rolling
from bench.mixed.goals import OVERALL_TEACHER_SHARE, TASK_TEACHER_SHARE

WINDOW = 100  # a task's own requests in the trailing mean


def _teacher_flags(raw: dict[str, Any]) -> tuple[dict[str, list[tuple[int, float]]], list[int]]:
    """Per task: (overall request number, 1 if the teacher answered); segment ends."""
    flags: dict[str, list[tuple[int, float]]] = defaultdict(list)
    bounds: list[int] = []
    n = 0
    for seg in raw.get("segments") or []:
        for rec in seg["records"]:
            n += 1
            flags[str(rec.get("task"))].append((n, 1.0 if rec.get("route") == "teacher" else 0.0))
        bounds.append(n)
    return flags, bounds[:-1]


def plot_routing(raw: dict[str, Any], out: Path) -> Path | None:
    flags, bounds = _teacher_flags(raw)
    if not flags:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    for task, points in flags.items():
        line = ax.plot([x for x, _ in points], rolling([f for _, f in points], WINDOW), label=task)[
            0
        ]
        goal = TASK_TEACHER_SHARE.get(task)
        if goal is not None:
            ax.axhline(goal, color=line.get_color(), linestyle=":", linewidth=0.9)
    ax.axhline(OVERALL_TEACHER_SHARE, color="black", linestyle="--", label="goal: all tasks")
    for b in bounds:
        ax.axvline(b, color="lightgrey", linewidth=0.6)
    total = sum(len(p) for p in flags.values())
    ax.axvspan(total - total // 4, total, color="tab:olive", alpha=0.08, label="final quarter")
    ax.set_xlabel("requests (all tasks)")
    ax.set_ylabel(f"teacher share\n(trailing {WINDOW} of the task's requests)")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower left", fontsize="small")
    ax.set_title("Who answers, per task (dotted: each task's goal; grey: rounds)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_quality(rows: list[dict[str, Any]], out: Path) -> Path | None:
    """The student alone on each task's validation queries after every round."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in rows:
        for task, metrics in (row.get("student_alone") or {}).items():
            quality = (metrics or {}).get("quality")
            if quality is not None:
                series[task].append((row["round"], quality))
    if not series:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for task, points in series.items():
        ax.plot([r for r, _ in points], [q for _, q in points], "o-", label=task)
    ax.set_xlabel("round")
    ax.set_ylabel("student alone (validation):\naccuracy, slot F1 or token F1")
    ax.set_ylim(0, 1.0)
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title("The students' quality over rounds (each task its own metric)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_plots(raw: dict[str, Any], rows: list[dict[str, Any]], out_dir: Path) -> list[str]:
    made = [plot_routing(raw, out_dir / "routing.png"), plot_quality(rows, out_dir / "quality.png")]
    return [p.name for p in made if p is not None]
