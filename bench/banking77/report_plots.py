"""PNG plots of a Banking77 run: routing and cost over requests, accuracy over rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness.plots import pyplot
from bench.harness.stats import Prices, baseline_costs, rolling


def _request_series(raw: dict[str, Any]) -> tuple[list[float], list[float], list[int]]:
    """Per request: teacher-route flag and cumulative cost ratio; segment boundaries."""
    prices = Prices(**raw["prices"])
    baseline = baseline_costs(raw["teacher_baseline"]["records"], prices)
    flags: list[float] = []
    ratios: list[float] = []
    bounds: list[int] = []
    spent = counterfactual = 0.0
    for seg in raw["segments"]:
        for rec in seg["records"]:
            tokens = (int(rec.get("prompt_tokens") or 0), int(rec.get("completion_tokens") or 0))
            if rec.get("route") is not None:
                spent += prices.student(*tokens)
            if rec.get("route") == "teacher":
                spent += prices.teacher(*tokens)
            counterfactual += baseline.get(int(rec["index"]), prices.teacher(*tokens))
            flags.append(1.0 if rec.get("route") == "teacher" else 0.0)
            ratios.append(spent / counterfactual if counterfactual else 0.0)
        bounds.append(len(flags))
    return flags, ratios, bounds[:-1]


def plot_routing_cost(raw: dict[str, Any], out: Path) -> Path | None:
    flags, ratios, bounds = _request_series(raw)
    if not flags:
        return None
    plt = pyplot()
    window = max(10, min(100, len(flags) // 10))
    x = list(range(1, len(flags) + 1))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(x, rolling(flags, window), color="tab:red")
    top.set_ylabel(f"fallback rate\n(trailing {window})")
    top.set_ylim(0, 1.05)
    bottom.plot(x, ratios, color="tab:blue")
    bottom.axhline(1 / 3, color="grey", linestyle="--", label="goal: a third")
    bottom.set_ylabel("cumulative cost\nvs all-teacher")
    bottom.set_xlabel("requests")
    bottom.set_ylim(0, 1.05)
    bottom.legend(loc="upper right")
    for b in bounds:
        for ax in (top, bottom):
            ax.axvline(b, color="lightgrey", linewidth=0.8)
    fig.suptitle("Routing and cost over traffic (vertical lines: re-distillation runs)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_accuracy(rows: list[dict[str, Any]], summary: dict[str, Any], out: Path) -> Path | None:
    if not rows:
        return None
    plt = pyplot()
    rounds = [r["round"] for r in rows]
    student = [r["student_only_accuracy"] for r in rows]
    served = [
        (r["round"], r["segment"]["served_accuracy"])
        for r in rows
        if r["segment"] and r["segment"]["served_accuracy"] is not None
    ]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(
        rounds,
        [s if s is not None else float("nan") for s in student],
        "o-",
        label="student alone (validation)",
    )
    if served:
        ax.plot([s[0] for s in served], [s[1] for s in served], "s-", label="served (traffic)")
    teacher = summary.get("teacher_accuracy")
    if teacher:
        ax.axhline(teacher, color="black", linestyle=":", label="all-teacher")
        ax.axhline(0.9 * teacher, color="tab:green", linestyle="--", label="goal student 90%")
        ax.axhline(0.98 * teacher, color="tab:purple", linestyle="--", label="goal served 98%")
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy vs gold labels")
    ax.set_ylim(0, 1.0)
    ax.set_xticks(rounds)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title("Accuracy over rounds")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_plots(
    raw: dict[str, Any], rows: list[dict[str, Any]], summary: dict[str, Any], out_dir: Path
) -> list[Path]:
    """Both plots into `out_dir`; returns the files written."""
    made = [
        plot_routing_cost(raw, out_dir / "routing_cost.png"),
        plot_accuracy(rows, summary, out_dir / "accuracy.png"),
    ]
    return [p for p in made if p is not None]
