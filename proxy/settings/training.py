"""Training settings: one distillation run, mapped onto trainer.config.TrainConfig."""

from __future__ import annotations

from pydantic import BaseModel, Field


def _default_refusal_patterns() -> tuple[str, ...]:
    # One canonical list, kept with the trainer (torch-free module).
    from trainer.config import DEFAULT_REFUSAL_PATTERNS

    return DEFAULT_REFUSAL_PATTERNS


class TrainingSettings(BaseModel):
    """The rows a run trains on, its splits, its hyperparameters, the vote student's fit."""

    train_min_rows: int = Field(
        50, ge=2, description="Fewest usable teacher-answered rows for a distillation run."
    )
    train_max_rows: int = Field(
        5000, ge=2, description="Most rows one run trains on (the newest after dedup)."
    )
    train_epochs: float = Field(3.0, gt=0, description="Training epochs per run.")
    train_lr: float = Field(2e-4, gt=0, description="LoRA learning rate.")
    train_lora_r: int = Field(
        8, ge=1, description="LoRA rank (keep <= the vLLM `--max-lora-rank`)."
    )
    train_lora_alpha: int = Field(16, ge=1, description="LoRA alpha.")
    train_lora_layers: int = Field(
        0,
        ge=0,
        description="LoRA on the top N transformer layers only (0: all); fewer layers make a "
        "training step cheaper.",
    )
    train_batch_size: int = Field(8, ge=1, description="Per-device training batch size.")
    train_max_seq_len: int = Field(
        1024, ge=16, description="Longest prompt+answer in tokens; longer rows are skipped."
    )
    train_finish_reasons: str = Field(
        "stop",
        description='Teacher finish reasons that count as complete answers: "stop" or '
        '"stop,length".',
    )
    train_refusal_patterns: list[str] = Field(
        default_factory=lambda: list(_default_refusal_patterns()),
        description="Regexes (Python `re.search`) on teacher answers; matching rows are not "
        "trained on. Env: a JSON list.",
    )
    train_scope_model: str | None = Field(
        None, description="Train only on requests for this `model` name."
    )
    train_scope_tag: str | None = Field(
        None, description="Train only on requests with this task tag."
    )
    train_eval_fraction: float = Field(
        0.1, gt=0, lt=1, description="Share of prompts held out for evaluation, for good."
    )
    train_eval_max_rows: int = Field(
        200, ge=1, description="Most held-out rows scored per model in a run."
    )
    train_calibration_fraction: float = Field(
        0.15,
        ge=0,
        lt=1,
        description="Share of prompts held out for good as the calibration set (never trained "
        "on; the next hash buckets after the eval split): every promoted version is scored on "
        "all of it, so its evidence grows with the traffic. 0: calibrate on the eval split.",
    )
    train_gold_holdout_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of gold rows (users' corrections, POST /v1/feedback) held out for "
        "evaluation and calibration, where they measure the student and the teacher against "
        "the truth; the rest train with the correction as label. Gold rows go to the held-out "
        "side first; a pure function of the prompt hash, like every split. 1: none trains.",
    )
    train_calibration_max_rows: int = Field(
        2000, ge=1, description="Most calibration rows (the newest) scored per promotion."
    )
    train_eval_base_max_rows: int = Field(
        50, ge=0, description="Held-out rows the base model is scored on in a run; 0 skips it."
    )
    train_cpu_bf16: bool | None = Field(
        None,
        description="bf16 autocast for CPU training; unset: on when the CPU has native bf16.",
    )
    train_kd_alpha: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Weight of the soft-label (teacher top-k logprobs) term; "
        "0 trains on hard labels only.",
    )
    train_kd_temperature: float = Field(2.0, gt=0, description="Distillation temperature.")
    train_warm_start: bool = Field(
        False, description="Continue training the current adapter instead of a fresh LoRA."
    )
    train_prune_prompt: bool = Field(
        False,
        description="Learn a long system prompt repeated verbatim by a task into the adapter "
        "and strip it from the student's input (training and serving).",
    )
    train_closed_set_max: int = Field(
        200,
        ge=0,
        description="Most distinct teacher answers for a task to be served as a "
        "closed set (structured choice); 0 disables.",
    )
    train_vote_k: int = Field(
        30, ge=1, description="Neighbours that vote for a query's label (vote student)."
    )
    train_vote_power: float = Field(
        8.0,
        ge=0,
        description="A neighbour's vote weighs its cosine similarity to this power (0: majority).",
    )
    train_vote_prior: float = Field(
        0.02,
        ge=0,
        description="Weight of an implicit neighbour that votes for no label, so a query far "
        "from every stored row (out of scope) gets a low vote share (0: off).",
    )
    train_vote_head_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Weight of a linear softmax head over the same vectors in the vote's "
        "confidence: (1 - w) x vote share + w x head probability (0: the neighbours alone).",
    )
    train_label_set: str | None = Field(
        None,
        description="Comma-separated labels of a closed-set task: teacher answers outside "
        "them are not trained on (unset: inferred when the task is clearly closed).",
    )
    train_answer_validator: str | None = Field(
        None,
        description="Python callable `module:function` (or a `distill.validators` entry "
        "point) called as fn(messages, answer); False or a reason string keeps the teacher "
        "answer out of training.",
    )
    train_seed: int = Field(42, description="Seed of the training run.")
