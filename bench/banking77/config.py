"""Command-line settings of the Banking77 benchmark (its presets, seed and directories).

What they become for each proxy is the harness's (`bench.harness.settings`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.banking77.data import DEFAULT_SEED
from bench.harness.settings import BenchSettings

HERE = Path(__file__).resolve().parent

# Defaults per mode; explicit flags win. --quick checks the machinery, not the numbers.
FULL = {
    "requests": 3000,
    # A vote student refits in seconds: the first round at about 180-200 teacher answers
    # (train_min_rows: about 2.4 per label, enough for the closed label set to be recognised;
    # the trigger is polled every 5 s, so a few more have arrived), then one every
    # 100, so versions at 400 and 500 answers get their chance to open the gate before request
    # 600 (a round every 200 first opened it at 621 answers).
    "retrain_every": 100,
    "concurrency": 8,
    "static_requests": 300,
    "val_limit": 300,
    "run_timeout": 3600.0,
    "train_min_rows": 180,
    "max_rounds": 20,
}
QUICK = {
    "requests": 100,
    "retrain_every": 30,
    "concurrency": 4,
    "static_requests": 16,
    "val_limit": 40,
    "run_timeout": 1200.0,
    "train_min_rows": 10,
    "max_rounds": 1,
    "train_epochs": 1.0,
}

QUICK_EXTRA = {"DISTILL_TRAIN_EVAL_FRACTION": "0.25"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.banking77.run",
        description="Banking77 traffic through the full distill loop, with baselines and a report.",
    )
    a = p.add_argument
    a("--quick", action="store_true", help="CI smoke run: ~80 requests, one tiny round")
    a("--requests", type=int, help="traffic requests (full 3000, quick 80)")
    a("--retrain-every", type=int, help="teacher-answered rows per re-distillation round")
    a("--max-rounds", type=int, help="stop re-distilling after this many rounds")
    a("--concurrency", type=int, help="concurrent client requests")
    a("--stream-fraction", type=float, default=0.3, help="share of streaming requests")
    a("--scorer", default="mean_logprob", choices=["mean_logprob", "min_prob", "mean_entropy"])
    a("--threshold", type=float, help="static threshold (default per scorer: STATIC_THRESHOLDS)")
    a(
        "--target-agreement",
        type=float,
        default=0.8,
        help="calibration target (the proxy's default and the README's recommended value); "
        "0 = static threshold only",
    )
    a("--no-soft-labels", action="store_true", help="train on hard labels only (kd_alpha=0)")
    a(
        "--no-prune-prompt",
        action="store_true",
        help="keep the 77-label system prompt in training and serving (slow on a CPU)",
    )
    a("--static-requests", type=int, help="requests for the static-cascade baseline (0: skip)")
    a("--val-limit", type=int, help="validation queries measured per round")
    a("--teacher-accuracy", type=float, default=0.92)
    a(
        "--feedback-rate",
        type=float,
        default=0.0,
        help="share of teacher answers that get the dataset label as a gold correction "
        "(POST /v1/feedback) during the learning phase; 0 = none",
    )
    a(
        "--feedback-compare",
        type=float,
        metavar="RATE",
        help="then run the learning phase again on a fresh proxy with this feedback rate and "
        "report both arms side by side (feedback.md); about doubles the run time",
    )
    a("--teacher-latency-ms", type=float, default=300.0)
    a("--price-in", type=float, default=2.5, help="teacher USD per 1M prompt tokens")
    a("--price-out", type=float, default=10.0, help="teacher USD per 1M completion tokens")
    a("--student-price", type=float, default=0.05, help="student USD per 1M tokens (in+out)")
    a("--student-url", help="use this vLLM (/v1) instead of the embedded one")
    a("--epochs", type=float, dest="train_epochs", help="training epochs per run")
    a("--run-timeout", type=float, help="seconds one re-distillation run may take")
    a("--ready-timeout", type=float, default=900.0, help="seconds for the proxy to get ready")
    a("--seed", type=int, default=DEFAULT_SEED)
    a("--out", type=Path, dest="out_dir", help="results directory")
    a(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra proxy setting, e.g. --set train_lora_r=16 (becomes DISTILL_TRAIN_LORA_R)",
    )
    return p


def parse_settings(argv: list[str] | None = None) -> BenchSettings:
    args = _parser().parse_args(argv)
    preset = QUICK if args.quick else FULL
    values = {**preset, **{k: v for k, v in vars(args).items() if v is not None}}
    # A tiny round still needs the trainer's minimum of 5 held-out rows.
    extra = dict(QUICK_EXTRA) if args.quick else {}
    for item in values.pop("set"):
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set needs NAME=VALUE, got {item!r}")
        extra[name.strip().upper()] = value
    values["soft_labels"] = not values.pop("no_soft_labels")
    values["prune_prompt"] = not values.pop("no_prune_prompt")
    for name in ("feedback_rate", "feedback_compare"):
        rate = values.get(name)
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise SystemExit(f"--{name.replace('_', '-')} must be in [0, 1], got {rate}")
    if values["target_agreement"] == 0:
        values["target_agreement"] = None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    values["work_dir"] = HERE / "work" / f"{'quick' if args.quick else 'full'}-{stamp}"
    if args.out_dir is None:
        values["out_dir"] = HERE / ("work/quick-results" if args.quick else "results")
    return BenchSettings(extra=extra, **values)
