"""The proxy side every learning benchmark shares: its settings and the DISTILL_* settings
each proxy it starts runs with (the README's defaults and recommended CPU settings).

A benchmark's own command line (its presets, its dataset's seed, its directories) builds a
`BenchSettings`; `proxy_env` turns it into one proxy's environment.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.harness.stack import encoder_cache

# Static thresholds per scorer when --threshold is not given (score >= threshold serves the
# student): about a 0.8 probability per label token on each scale.
STATIC_THRESHOLDS = {"mean_logprob": -0.2, "min_prob": 0.6, "mean_entropy": -0.4}

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
    seed: int = 0
    out_dir: Path = Path("results")
    work_dir: Path = Path("work")
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def static_threshold(self) -> float:
        """The threshold of the static cascade (and of the learning proxy outside calibration)."""
        return self.threshold if self.threshold is not None else STATIC_THRESHOLDS[self.scorer]

    def public(self) -> dict[str, Any]:
        """The settings worth recording (paths as strings, nothing secret)."""
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}


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
