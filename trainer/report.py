"""`report.json` of a run and the short human summary printed at its end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.breakdown import weak_label_lines
from trainer.config import TrainConfig
from trainer.dataset import DatasetSelection
from trainer.feedback import gold_lines

if TYPE_CHECKING:
    from trainer.sft import TrainResult

REPORT_VERSION = 1


def build_report(
    *,
    run_id: str,
    snapshot: Path,
    base_model: str,
    incumbent: Path | None,
    cfg: TrainConfig,
    selection: DatasetSelection,
    train: TrainResult,
    evaluation: dict[str, Any],
    durations: dict[str, float],
) -> dict[str, Any]:
    curve = train.loss_curve
    prefix = selection.prompt_prefix
    return {
        "report_version": REPORT_VERSION,
        "run_id": run_id,
        "status": "succeeded",
        "snapshot": str(snapshot),
        "base_model": base_model,
        "incumbent_adapter": str(incumbent) if incumbent else None,
        "adapter_path": str(train.adapter_dir),
        "config": cfg.to_dict(),
        "dataset": selection.summary(),
        "training": {
            "examples": train.examples,
            "dropped_too_long": train.dropped_too_long,
            "steps": train.steps,
            "train_seconds": round(train.train_seconds, 2),
            "seconds_per_100_rows": round(100 * train.train_seconds / max(1, train.examples), 2),
            "device": train.device,
            "warm_started": train.warm_started,
            "loss_first": curve[0]["loss"] if curve else None,
            "loss_last": curve[-1]["loss"] if curve else None,
            "loss_curve": curve,
            "kd_active": train.kd_active,
            "soft_labels": train.soft_labels.to_dict(),
        },
        "evaluation": evaluation,
        "closed_set": selection.closed_set,
        "prompt_prefix": prefix.to_dict() if prefix and prefix.pruned else None,
        "durations": {k: round(v, 2) for k, v in durations.items()},
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def summary_lines(report: dict[str, Any], run_dir: Path) -> list[str]:
    ds, tr, ev = report["dataset"], report["training"], report["evaluation"]
    counts = ds["counts"]
    lines = [
        f"run {report['run_id']}: {ds['train_rows']} train / {ds['eval_rows']} eval rows "
        f"(of {counts.get('total', 0)} logged, {counts.get('selected', 0)} usable)",
        f"training: {tr['steps']} steps in {tr['train_seconds']:.0f} s "
        f"({tr['seconds_per_100_rows']:.0f} s per 100 rows, {tr['device']}), "
        f"loss {_fmt(tr['loss_first'])} -> {_fmt(tr['loss_last'])}",
    ]
    soft = tr["soft_labels"]
    if tr["kd_active"]:
        lines.append(
            f"soft labels: {soft['positions_used']} positions used, "
            f"{soft['positions_skipped']} skipped ({soft['rows_with_logprobs']} rows)"
        )
    parts = [
        f"{role} {_fmt(res['agreement'])}"
        for role in ("candidate", "incumbent", "base")
        if (res := ev.get(role)) is not None
    ]
    metric = ev["candidate"]["metric"] if ev.get("candidate") else "n/a"
    lines.append(
        f"agreement with the teacher ({metric}) on {ev.get('eval_rows', 0)} held-out prompts: "
        + ", ".join(parts)
    )
    lines.extend(gold_lines(counts, ds.get("feedback"), ev))
    lines.extend(weak_label_lines(ev))
    if report.get("closed_set"):
        lines.append(f"closed set: {len(report['closed_set'])} labels (served as a choice)")
    if report.get("prompt_prefix"):
        lines.append(f"pruned system prompt: {report['prompt_prefix']['chars']} chars")
    lines.append(f"artifacts: {run_dir} (adapter/, report.json, manifest.json, train.log)")
    return lines
