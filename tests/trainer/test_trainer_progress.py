"""Progress file and printed summary of a run (no training)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from trainer.report import summary_lines


def test_progress_callback_writes_eta_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("transformers")
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from trainer.progress import ProgressCallback

    callback = ProgressCallback(tmp_path)
    state = TrainerState(max_steps=10)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    callback.on_train_begin(args, state, TrainerControl())
    assert json.loads((tmp_path / "progress.json").read_text())["step"] == 0
    state.global_step, state.epoch = 4, 0.4
    callback.on_step_end(args, state, TrainerControl())
    with caplog.at_level(logging.INFO, logger="trainer.progress"):
        callback.on_log(args, state, TrainerControl(), logs={"loss": 1.25, "kd_loss": 0.5})
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["phase"] == "training" and progress["step"] == 4
    assert progress["max_steps"] == 10 and progress["loss"] == 1.25
    assert progress["eta_seconds"] is not None and progress["eta_seconds"] >= 0
    assert "step 4/10 loss=1.2500 kd_loss=0.5000" in caplog.text


def test_summary_lines() -> None:
    report = {
        "run_id": "r1",
        "dataset": {"train_rows": 90, "eval_rows": 10, "counts": {"total": 120, "selected": 100}},
        "training": {
            "steps": 24,
            "train_seconds": 60.0,
            "seconds_per_100_rows": 66.7,
            "device": "cpu",
            "loss_first": 4.8,
            "loss_last": 0.7,
            "kd_active": True,
            "soft_labels": {
                "positions_used": 500,
                "positions_skipped": 20,
                "rows_with_logprobs": 90,
            },
        },
        "evaluation": {
            "eval_rows": 10,
            "candidate": {"agreement": 0.4, "metric": "exact_match"},
            "incumbent": None,
            "base": {"agreement": 0.0},
        },
        "closed_set": ["a", "b"],
        "prompt_prefix": {"chars": 1952},
    }
    text = "\n".join(summary_lines(report, Path("/runs/r1")))
    assert "90 train / 10 eval rows (of 120 logged, 100 usable)" in text
    assert "loss 4.800 -> 0.700" in text and "500 positions used, 20 skipped" in text
    assert "candidate 0.400, base 0.000" in text and "incumbent" not in text
    assert "closed set: 2 labels" in text and "1952 chars" in text and "/runs/r1" in text
