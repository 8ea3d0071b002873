"""Visible training progress: ``progress.json`` in the run dir (read by ``distill runs`` and
the admin API while the run is going) and one log line per logging step."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from trainer.runfiles import PROGRESS, write_json_atomic

log = logging.getLogger("trainer.progress")


class ProgressCallback(TrainerCallback):
    """Writes step, max_steps, loss and ETA after every step; logs a line per logging step."""

    def __init__(self, run_dir: Path, phase: str = "training") -> None:
        self.path = run_dir / PROGRESS
        self.phase = phase
        self._started = time.monotonic()
        self._loss: float | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._started = time.monotonic()
        self._write(state)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if state.is_world_process_zero:
            self._write(state)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        if not logs or "loss" not in logs or not state.is_world_process_zero:
            return
        self._loss = float(logs["loss"])
        snapshot = self._write(state)
        extra = "".join(f" {k}={logs[k]:.4f}" for k in ("ce_loss", "kd_loss") if k in logs)
        log.info(
            "step %d/%d loss=%.4f%s eta=%ss",
            state.global_step,
            state.max_steps,
            self._loss,
            extra,
            snapshot["eta_seconds"],
        )

    def _write(self, state: TrainerState) -> dict[str, Any]:
        elapsed = time.monotonic() - self._started
        step, total = state.global_step, state.max_steps
        eta = elapsed / step * (total - step) if step else None
        snapshot = {
            "phase": self.phase,
            "step": step,
            "max_steps": total,
            "epoch": state.epoch,
            "loss": self._loss,
            "elapsed_seconds": round(elapsed, 1),
            "eta_seconds": round(eta) if eta is not None else None,
            "updated_at": time.time(),
        }
        if state.is_world_process_zero:
            write_json_atomic(self.path, snapshot)
        return snapshot
