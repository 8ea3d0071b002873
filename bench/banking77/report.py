"""Turns a raw benchmark record into results/: summary.json, results.md and PNG plots.

    python -m bench.banking77.report bench/banking77/work/<run>/raw.json [--out DIR]

The raw record (written by `run.py`) holds every request as the client saw it, per
segment of traffic between two re-distillation runs; everything here is derived from
it, so a report can be regenerated without rerunning anything.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.banking77.goals import goals
from bench.banking77.report_calibration import calibration_by_round
from bench.banking77.report_md import render_markdown
from bench.banking77.report_plots import write_plots
from bench.banking77.scorers import scorers_by_round
from bench.harness.report_tasks import task_table
from bench.harness.stats import (
    Prices,
    accuracy,
    baseline_costs,
    latency_by_route,
    segment_summary,
    teacher_cost_from_usage,
)
from bench.tasks import banking77

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _prices(raw: dict[str, Any]) -> Prices:
    return Prices(**raw["prices"])


def _add(total: float | None, part: float | None) -> float | None:
    """Running sum that becomes unknown (None) as soon as one part is unknown."""
    return None if total is None or part is None else total + part


def _add_costs(
    total: dict[str, float] | None, part: dict[str, float] | None
) -> dict[str, float] | None:
    if total is None or part is None:
        return None
    return {k: total[k] + part.get(k, 0.0) for k in total}


def _val_acc(block: dict[str, Any] | None) -> float | None:
    return accuracy(block["records"]) if block else None


def build_rounds(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per traffic segment (round 0: the base student before any traffic)."""
    prices = _prices(raw)
    baseline = baseline_costs(raw["teacher_baseline"]["records"], prices)
    base_val = raw.get("base_validation")
    rows: list[dict[str, Any]] = [
        {
            "round": 0,
            "requests_so_far": 0,
            "segment": None,
            "student_only_accuracy": _val_acc(base_val),
            "validation_size": len(base_val["records"]) if base_val else 0,
            "training_seconds": None,
            "run_status": None,
            "cumulative": None,
        }
    ]
    so_far: list[dict[str, Any]] = []
    spend_so_far: float | None = 0.0
    proxy_so_far: dict[str, float] | None = {"cost_usd": 0.0, "counterfactual_cost_usd": 0.0}
    student_acc = rows[0]["student_only_accuracy"]
    for seg in raw["segments"]:
        so_far.extend(seg["records"])
        spend = seg.get("teacher_spend_usd")
        spend_so_far = _add(spend_so_far, spend)
        proxy_so_far = _add_costs(proxy_so_far, seg.get("proxy_cost"))
        validation = seg.get("validation")
        if validation:
            student_acc = _val_acc(validation)
        run = seg.get("run") or {}
        rows.append(
            {
                "round": seg["round"],
                "requests_so_far": len(so_far),
                "segment": segment_summary(
                    seg["records"], prices, baseline, spend, seg.get("proxy_cost")
                ),
                "cumulative": segment_summary(so_far, prices, baseline, spend_so_far, proxy_so_far),
                "student_only_accuracy": student_acc,
                "validation_size": len(validation["records"]) if validation else None,
                "training_seconds": seg.get("training_seconds"),
                "run_status": run.get("status"),
                "student_version": seg.get("student_version"),
            }
        )
    return rows


def final_third(raw: dict[str, Any]) -> dict[str, Any] | None:
    """Routing, accuracy and cost of the last third of the learning traffic.

    Thirds do not follow segment boundaries, so the teacher's own spend beyond what clients
    saw (shadow samples, retries) is spread over each segment's requests and the final
    third gets its records' share; the rest is computed from usage at the run's prices.
    """
    segments = raw.get("segments") or []
    records = [r for seg in segments for r in seg["records"]]
    if not records:
        return None
    prices = _prices(raw)
    baseline = baseline_costs(raw["teacher_baseline"]["records"], prices)
    start = len(records) - len(records) // 3
    extra = 0.0
    pos = 0
    for seg in segments:
        recs = seg["records"]
        spend = seg.get("teacher_spend_usd")
        overhead = spend - teacher_cost_from_usage(recs, prices) if spend is not None else 0.0
        in_third = max(0, pos + len(recs) - max(pos, start))
        extra += overhead * in_third / len(recs) if recs else 0.0
        pos += len(recs)
    tail = records[start:]
    spend = teacher_cost_from_usage(tail, prices) + extra
    out = segment_summary(tail, prices, baseline, spend)
    out["first_request"] = start
    return out


def learning_table(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Per re-distillation: what it trained on, how long, and what the student then did
    alone on validation (accuracy, and the share it could serve at 95 % precision)."""
    reports = raw.get("run_reports") or {}
    scorers = scorers_by_round(raw)
    out = []
    for seg in raw.get("segments", []):
        run_id = (seg.get("run") or {}).get("id")
        if not run_id:
            continue
        rep = reports.get(run_id, {})
        block = scorers.get(f"round {seg['round']}") or {}
        curves = block.get("scorers") or {}
        best = max(curves, key=lambda n: curves[n].get("coverage_at_95") or 0, default=None)
        probes = seg.get("latency_probes") or {}
        out.append({
            "round": seg["round"], "run": run_id, "status": seg["run"].get("status"),
            "train_rows": rep.get("train_rows"), "calibration_rows": rep.get("calibration_rows"),
            "epochs": rep.get("epochs"), "warm_started": rep.get("warm_started"),
            "train_minutes": (rep.get("train_seconds") or 0) / 60 or None,
            "run_minutes": (seg.get("training_seconds") or 0) / 60 or None,
            "student_accuracy": _val_acc(seg.get("validation")),
            "coverage_at_95": curves[best].get("coverage_at_95") if best else None,
            "coverage_scorer": best,
            "student_p50_ms_idle": (probes.get("idle") or {}).get("p50_ms"),
            "student_p95_ms_idle": (probes.get("idle") or {}).get("p95_ms"),
            "student_p50_ms_training": (probes.get("during_training") or {}).get("p50_ms"),
            "student_p95_ms_training": (probes.get("during_training") or {}).get("p95_ms"),
        })  # fmt: skip
    return out


def _baselines(raw: dict[str, Any]) -> dict[str, Any]:
    prices = _prices(raw)
    teacher = raw["teacher_baseline"]["records"]
    baseline = baseline_costs(teacher, prices)
    out: dict[str, Any] = {
        "all_teacher": {
            "requests": len(teacher),
            "accuracy": accuracy(teacher),
            "cost_usd": sum(baseline.values()),
            "latency_ms": latency_by_route(teacher),
        },
        "base_student": {
            "validation_size": len(raw["base_validation"]["records"]),
            "accuracy": _val_acc(raw["base_validation"]),
        }
        if raw.get("base_validation")
        else None,
        "static_cascade": None,
    }
    static = raw.get("static")
    if static:
        out["static_cascade"] = {
            **segment_summary(
                static["records"],
                prices,
                baseline,
                static.get("teacher_spend_usd"),
                static.get("proxy_cost"),
            ),
            "settings": static.get("settings", {}),
        }
    return out


def per_task(raw: dict[str, Any]) -> dict[str, Any]:
    """The harness's per-task report (the mixed benchmark's table) for the learning traffic:
    one task here, so it restates the overall numbers in the shape every benchmark shares."""
    task = banking77.task(labels=[])  # scoring reads the records' `correct`, not the labels

    def tagged(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "task": r.get("task") or banking77.NAME} for r in records]

    learning = tagged([r for seg in raw.get("segments") or [] for r in seg["records"]])
    teacher = tagged(raw["teacher_baseline"]["records"])
    return task_table({banking77.NAME: task}, learning, teacher, _prices(raw))


def build_summary(raw: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers for the final round plus overall and baseline figures."""
    baselines = _baselines(raw)
    served_rows = [r for r in rows if r["segment"] and r["segment"]["requests"]]
    final = served_rows[-1] if served_rows else None
    seg = final["segment"] if final else {}
    cum = final["cumulative"] if final else {}
    summary: dict[str, Any] = {
        "requests": final["requests_so_far"] if final else 0,
        "teacher_accuracy": baselines["all_teacher"]["accuracy"],
        "student_only_accuracy": rows[-1]["student_only_accuracy"],
        "served_accuracy": seg.get("served_accuracy"),
        "teacher_call_fraction": seg.get("fallback_rate"),
        "cost_ratio": seg.get("cost_ratio"),
        "served_accuracy_overall": cum.get("served_accuracy"),
        "teacher_call_fraction_overall": cum.get("fallback_rate"),
        "cost_ratio_overall": cum.get("cost_ratio"),
        "cost_usd_overall": cum.get("cost_usd"),
        "all_teacher_cost_usd_overall": cum.get("all_teacher_cost_usd"),
        "final_round": final["round"] if final else None,
        "final_round_requests": seg.get("requests"),
        "rounds": len(rows) - 1,
        "minutes": raw["minutes"],
        "date": raw["date"],
        "machine": raw["machine"],
        "settings": raw["settings"],
        "prices_usd_per_million_tokens": raw["prices"],
        "baselines": baselines,
        "proxy_stats": raw.get("proxy_stats"),
        "feedback": raw.get("feedback"),
        "final_third": final_third(raw),
        "calibration_by_round": calibration_by_round(raw),
        "calibration_evidence": raw.get("calibration_evidence"),
        "learning": learning_table(raw),
        "notes": raw.get("notes", []),
        "scorers": scorers_by_round(raw),
        "served_cascade": {
            k: v for k, v in (raw.get("served_cascade") or {}).items() if k != "records"
        }
        or None,
    }
    summary["cost_source"] = (
        "the proxy's own cost accounting (GET /admin/stats)"
        if seg.get("cost_ratio_proxy") is not None
        else "costs computed from usage with the prices above"
    )
    summary["per_task"] = per_task(raw)
    summary["goals"] = goals(raw, summary, rows)
    return summary


def write_report(raw: dict[str, Any], out_dir: Path = DEFAULT_OUT) -> dict[str, Any]:
    """Writes summary.json, rounds.json, results.md and the plots; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = build_rounds(raw)
    summary = build_summary(raw, rows)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out_dir / "rounds.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    plots = write_plots(raw, rows, summary, out_dir)
    (out_dir / "results.md").write_text(render_markdown(summary, rows, plots))
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rebuild the Banking77 report from raw.json")
    parser.add_argument("raw", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    summary = write_report(json.loads(args.raw.read_text()), args.out)
    print(json.dumps({k: summary[k] for k in ("requests", "served_accuracy", "cost_ratio")}))


if __name__ == "__main__":
    main()
