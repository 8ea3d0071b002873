"""Command-line settings of the Banking77 benchmark and how they become DISTILL_* settings."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.banking77.data import DEFAULT_SEED

HERE = Path(__file__).resolve().parent

# Static thresholds per scorer when --threshold is not given (score >= threshold serves the
# student): about a 0.8 probability per label token on each scale.
STATIC_THRESHOLDS = {"mean_logprob": -0.2, "min_prob": 0.6, "mean_entropy": -0.4}

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

# The README's recommended training settings for a small student on a CPU (section
# "Recommended settings for a CPU student"; tests/bench/test_bench_config.py keeps the two
# equal). The learning proxy runs with them; --epochs, --no-soft-labels and --set override.
RECOMMENDED_CPU = {
    "DISTILL_TRAIN_LR": "3e-3",
    "DISTILL_TRAIN_LORA_R": "16",
    "DISTILL_TRAIN_LORA_ALPHA": "16",
    "DISTILL_TRAIN_LORA_LAYERS": "15",
    "DISTILL_TRAIN_EPOCHS": "1",
    "DISTILL_TRAIN_KD_ALPHA": "0",
    "DISTILL_TRAIN_WARM_START": "true",
    "DISTILL_TRAIN_PRUNE_PROMPT": "true",
}


@dataclass(slots=True)
class BenchSettings:
    """Everything one benchmark run needs (recorded in the results)."""

    quick: bool = False
    requests: int = 3000
    retrain_every: int = 500
    max_rounds: int | None = None
    concurrency: int = 8
    stream_fraction: float = 0.3
    scorer: str = "mean_logprob"
    threshold: float | None = None
    target_agreement: float | None = 0.8
    soft_labels: bool = True
    prune_prompt: bool = True
    static_requests: int = 300
    val_limit: int = 400
    teacher_accuracy: float = 0.92
    # Share of the learning proxy's teacher answers that get the dataset label as a gold
    # correction through POST /v1/feedback, as an app's users would send it.
    feedback_rate: float = 0.0
    # A second learning arm in the same run with this feedback rate (report side by side).
    feedback_compare: float | None = None
    teacher_latency_ms: float = 300.0
    price_in: float = 2.5
    price_out: float = 10.0
    student_price: float = 0.05
    student_url: str | None = None
    train_epochs: float | None = None
    train_min_rows: int = 50
    run_start_timeout: float = 90.0
    run_timeout: float = 3600.0
    ready_timeout: float = 900.0
    seed: int = DEFAULT_SEED
    out_dir: Path = HERE / "results"
    work_dir: Path = HERE / "work"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def static_threshold(self) -> float:
        """The threshold of the static cascade (and of the learning proxy outside calibration)."""
        return self.threshold if self.threshold is not None else STATIC_THRESHOLDS[self.scorer]

    def public(self) -> dict[str, Any]:
        """The settings worth recording (paths as strings, nothing secret)."""
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}


def encoder_cache(base_model: Path) -> Path:
    """The vote student's encoder directory next to the cached student model."""
    return base_model.parent / "all-MiniLM-L6-v2"


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


def proxy_env(
    s: BenchSettings,
    teacher_v1: str,
    teacher_key: str,
    admin_key: str,
    role: str,
    base_model: Path | None,
) -> dict[str, str]:
    """DISTILL_* settings of one proxy; `role` is "learning" or "static" (never retrains)."""
    env = {
        **RECOMMENDED_CPU,
        "DISTILL_TEACHER_URL": teacher_v1,
        "DISTILL_TEACHER_MODEL": "replay-teacher",
        "DISTILL_TEACHER_API_KEY": teacher_key,
        "DISTILL_ADMIN_KEY": admin_key,
        "DISTILL_DB": str(s.work_dir / role / "distill.duckdb"),
        "DISTILL_DATA_DIR": str(s.work_dir / role / "data"),
        "DISTILL_CONFIDENCE_SCORER": s.scorer,
        "DISTILL_TRAIN_MIN_ROWS": str(s.train_min_rows),
        "DISTILL_TEACHER_TOP_LOGPROBS": "5",
        "DISTILL_TEACHER_DEFAULT_PRICE": json.dumps({"input": s.price_in, "output": s.price_out}),
        "DISTILL_STUDENT_PRICE_PER_1M": str(s.student_price),
    }
    if s.student_url:
        env["DISTILL_STUDENT_URL"] = s.student_url
    elif base_model is not None:
        env["DISTILL_STUDENT_BASE_MODEL"] = str(base_model)
        # The encoder is extracted once beside the converted student, not per run.
        env["DISTILL_ENCODER_MODEL"] = str(encoder_cache(base_model))
    if role == "static":
        # It never retrains, so it needs no encoder for a vote student.
        env["DISTILL_CLOSED_SET_STUDENT"] = "lora"
    if role == "static" or s.target_agreement is None:
        # Static mode is the opt-in: setting a threshold turns calibration off.
        env["DISTILL_CONFIDENCE_THRESHOLD"] = str(s.static_threshold)
    if not s.soft_labels:
        env["DISTILL_TRAIN_KD_ALPHA"] = "0"
    if not s.prune_prompt:  # the 77-label system prompt (~640 tokens) re-read every time
        env["DISTILL_TRAIN_PRUNE_PROMPT"] = "false"
    if s.train_epochs is not None:
        env["DISTILL_TRAIN_EPOCHS"] = str(s.train_epochs)
    if role == "learning":
        # The bench measures the base student itself (validation split, round 0).
        env["DISTILL_TRAIN_EVAL_BASE_MAX_ROWS"] = "0"
        # The proxy's own scheduler starts a run after this many new teacher-answered rows.
        env["DISTILL_TRAIN_EVERY_ROWS"] = str(s.retrain_every)
        if s.target_agreement is not None:
            env["DISTILL_TARGET_AGREEMENT"] = str(s.target_agreement)
    # The static role sets neither train_every_rows nor train_schedule: it never retrains.
    env.update({k if k.startswith("DISTILL_") else f"DISTILL_{k}": v for k, v in s.extra.items()})
    return env
