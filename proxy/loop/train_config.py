"""The `TrainConfig` of a run, built from the server's `Settings`.

The flat ``train_*`` settings (section ``# --- trainer`` of `Settings`) map onto
`trainer.config.TrainConfig`, so the same TOML file and ``DISTILL_TRAIN_*`` environment
variables configure the server and the trainer. It lives on the proxy's side: the trainer
never imports `proxy/`; it reads the config as JSON (``--config-json``).
"""

from __future__ import annotations

from typing import Any

from proxy.settings import Settings
from trainer.config import TrainConfig, split_csv


def train_config_from_settings(settings: Settings, **overrides: Any) -> TrainConfig:
    """Maps the flat ``train_*`` settings; ``overrides`` replace TrainConfig fields. A
    per-task run (``task=...``) takes the task's ``[tasks.NAME]`` label set and validator
    over the global ones."""
    values: dict[str, Any] = {
        "min_rows": settings.train_min_rows,
        "max_rows": settings.train_max_rows,
        "epochs": settings.train_epochs,
        "lr": settings.train_lr,
        "lora_r": settings.train_lora_r,
        "lora_alpha": settings.train_lora_alpha,
        "lora_layers": settings.train_lora_layers,
        "batch_size": settings.train_batch_size,
        "max_seq_len": settings.train_max_seq_len,
        "finish_reasons": split_csv(settings.train_finish_reasons),
        "refusal_patterns": tuple(settings.train_refusal_patterns),
        "scope_model": settings.train_scope_model,
        "scope_tag": settings.train_scope_tag,
        "eval_fraction": settings.train_eval_fraction,
        "kd_alpha": settings.train_kd_alpha,
        "kd_temperature": settings.train_kd_temperature,
        "warm_start": settings.train_warm_start,
        "prune_prompt": settings.train_prune_prompt,
        "closed_set_max": settings.train_closed_set_max,
        "closed_set_student": settings.closed_set_student,
        "extraction_student": settings.extraction_student,
        "vote_k": settings.train_vote_k,
        "vote_power": settings.train_vote_power,
        "vote_prior": settings.train_vote_prior,
        "vote_head_weight": settings.train_vote_head_weight,
        "label_set": split_csv(settings.train_label_set or ""),
        "answer_validator": settings.train_answer_validator,
        "eval_max_rows": settings.train_eval_max_rows,
        "calibration_fraction": settings.train_calibration_fraction,
        "calibration_max_rows": settings.train_calibration_max_rows,
        "gold_holdout_fraction": settings.train_gold_holdout_fraction,
        "eval_base_max_rows": settings.train_eval_base_max_rows,
        "cpu_bf16": settings.train_cpu_bf16,
        "seed": settings.train_seed,
    }
    values.update(_task_values(settings, overrides.get("task")))
    values.update(overrides)
    return TrainConfig(**values)


def _task_values(settings: Settings, task: Any) -> dict[str, Any]:
    override = settings.tasks.get(task) if isinstance(task, str) else None
    if override is None:
        return {}
    out: dict[str, Any] = {}
    if override.label_set:
        out["label_set"] = tuple(override.label_set)
    if override.validator:
        out["answer_validator"] = override.validator
    return out
