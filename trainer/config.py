"""`TrainConfig`: every knob of one distillation run, TRL style (help text per field,
validation in `__post_init__`).

Built by the proxy from its `Settings` (`proxy.loop.train_config.train_config_from_settings`:
the flat ``train_*`` fields, so the same TOML file and ``DISTILL_TRAIN_*`` environment variables
configure the server and the trainer), handed to the trainer as the JSON the scheduler writes
(`to_dict` / `from_dict`). No torch and nothing from `proxy/` here: the proxy imports it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

FINISH_REASONS = frozenset({"stop", "length"})
CLOSED_SET_STUDENTS = ("vote", "lora")
EXTRACTION_STUDENTS = ("spans", "lora")

DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    r"(?i)^\W*(i'?m|i am) (sorry|afraid),? (but )?i (can(no|')?t|won'?t|am not able|'m not able)",
    r"(?i)^\W*i (can(no|')?t|won'?t) (help|assist|comply|provide|do that)",
    r"(?i)^\W*as an ai( language model)?,? i (can(no|')?t|don'?t|am not able)",
)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class TrainConfig:
    """Configuration of one distillation run (dataset selection, LoRA SFT + KD, evaluation)."""

    # --- dataset selection -------------------------------------------------------------------
    min_rows: int = field(
        default=50, metadata=_help("Fewest usable rows (after filters and dedup) for a run.")
    )
    min_eval_rows: int = field(
        default=5, metadata=_help("Fewest rows in the held-out eval split for a run.")
    )
    max_rows: int = field(
        default=5000, metadata=_help("Most rows used (the newest after dedup); bounds run time.")
    )
    finish_reasons: tuple[str, ...] = field(
        default=("stop",),
        metadata=_help("Teacher finish reasons accepted as complete answers: stop, length."),
    )
    refusal_patterns: tuple[str, ...] = field(
        default=DEFAULT_REFUSAL_PATTERNS,
        metadata=_help("Python regexes (re.search) on the teacher's answer; a match drops it."),
    )
    scope_model: str | None = field(
        default=None, metadata=_help("Only rows whose requested model is exactly this.")
    )
    scope_tag: str | None = field(
        default=None, metadata=_help("Only rows with exactly this task tag.")
    )
    task: str | None = field(
        default=None,
        metadata=_help("Only rows of this task (the log's `task` column); a per-task run sets it."),
    )
    eval_fraction: float = field(
        default=0.1,
        metadata=_help(
            "Share of prompt hashes held out for evaluation, for good (the split is a pure "
            "function of the prompt hash, so a prompt never moves between train and eval)."
        ),
    )
    eval_max_rows: int = field(
        default=200, metadata=_help("Most eval rows scored per model (the newest).")
    )
    calibration_fraction: float = field(
        default=0.15,
        metadata=_help(
            "Share of prompt hashes held out for good as the calibration set (the hash buckets "
            "right after the eval split): never trained on, scored by the proxy at promotion "
            "to set the serving threshold. 0: none (the proxy calibrates on the eval split)."
        ),
    )
    gold_holdout_fraction: float = field(
        default=0.5,
        metadata=_help(
            "Share of gold rows' prompt hashes held out (eval and calibration, in their usual "
            "proportion): gold rows go to the held-out side first, the rest train with the "
            "correction as label. The hash buckets right after the held-out ones count as "
            "held out for gold rows, so the choice is still a pure function of the prompt. At "
            "or below eval_fraction + calibration_fraction: no extra holdout; 1: none trains."
        ),
    )
    calibration_max_rows: int = field(
        default=2000, metadata=_help("Most calibration rows listed per run (the newest).")
    )
    prune_prompt: bool = field(
        default=False,
        metadata=_help(
            "Strip a long system message shared verbatim by (nearly) every row from the "
            "student's input; the proxy strips it at serving time for this adapter."
        ),
    )
    prune_min_share: float = field(
        default=0.9, metadata=_help("Share of rows that must repeat the system message.")
    )
    prune_min_chars: int = field(
        default=200, metadata=_help("Shortest system message worth pruning (characters).")
    )
    closed_set_max: int = field(
        default=200,
        metadata=_help(
            "Most distinct teacher answers for the task to count as closed-set (0: never)."
        ),
    )
    closed_set_student: str = field(
        default="vote",
        metadata=_help(
            "Student of a closed-set task: `vote` (a nearest-neighbour vote over the "
            "encoder's sentence embeddings, fitted in seconds; trainer/vote.py) or `lora` "
            "(the generative LoRA student, trained with TRL like an open-ended task)."
        ),
    )
    vote_k: int = field(
        default=30, metadata=_help("Neighbours that vote for a query's label (vote student).")
    )
    vote_power: float = field(
        default=8.0,
        metadata=_help(
            "A neighbour's vote weighs its cosine similarity to the query to this power "
            "(0: a plain majority); bench/closed_set/ compares the choices."
        ),
    )
    vote_prior: float = field(
        default=0.02,
        metadata=_help(
            "Weight of an implicit neighbour that votes for no label, so a query far from "
            "every stored row (out of scope) gets a low share (0: off)."
        ),
    )
    vote_head_weight: float = field(
        default=0.5,
        metadata=_help(
            "Weight of a linear softmax head over the same vectors in the vote's confidence: "
            "(1 - w) x vote share + w x head probability (0: the neighbours alone; "
            "trainer/head.py)."
        ),
    )
    extraction_student: str = field(
        default="spans",
        metadata=_help(
            "Student of a span-shaped extraction task (JSON answers: a label and the "
            "query's own words): `spans` (a label vote and a token tagger over the "
            "encoder's states, fitted in seconds; trainer/spans.py) or `lora`."
        ),
    )
    span_hidden: int = field(
        default=256, metadata=_help("Hidden width of the span student's token tagger.")
    )
    span_epochs: int = field(
        default=40, metadata=_help("Passes over the tagged tokens when fitting the tagger.")
    )
    span_folds: int = field(
        default=4,
        metadata=_help(
            "Folds of the span student's out-of-fold calibration pairs (each fold's rows "
            "answered by a tagger fitted without them)."
        ),
    )
    label_set: tuple[str, ...] = field(
        default=(),
        metadata=_help(
            "The task's labels; teacher answers outside them are not trained on (empty: "
            "inferred for clearly closed tasks, see trainer/validators.py)."
        ),
    )
    label_set_min_share: float = field(
        default=0.95,
        metadata=_help("Share of rows with a repeated short answer for a label set inferred."),
    )
    answer_validator: str | None = field(
        default=None,
        metadata=_help(
            "module:function called as fn(messages, answer); False or a reason string "
            "keeps the teacher answer out of training."
        ),
    )
    # --- training ------------------------------------------------------------------------------
    epochs: float = field(default=3.0, metadata=_help("Training epochs over the train split."))
    lr: float = field(default=2e-4, metadata=_help("Learning rate (LoRA)."))
    lora_r: int = field(default=8, metadata=_help("LoRA rank (<= vLLM's --max-lora-rank)."))
    lora_alpha: int = field(default=16, metadata=_help("LoRA alpha."))
    lora_layers: int = field(
        default=0,
        metadata=_help(
            "LoRA on the top N transformer layers only (0: all). The backward pass then stops "
            "at the lowest adapted layer, so a step costs less (see trainer.sft.top_layers)."
        ),
    )
    lora_dropout: float = field(default=0.05, metadata=_help("LoRA dropout."))
    batch_size: int = field(default=8, metadata=_help("Per-device batch size."))
    grad_accum: int = field(default=1, metadata=_help("Gradient accumulation steps."))
    max_seq_len: int = field(
        default=1024, metadata=_help("Longest prompt+completion in tokens (longer rows dropped).")
    )
    kd_alpha: float = field(
        default=0.5,
        metadata=_help(
            "Weight of the soft-label (KD) term on aligned positions: alpha*KD + (1-alpha)*CE. "
            "0 trains on hard labels only."
        ),
    )
    kd_temperature: float = field(default=2.0, metadata=_help("KD temperature T (loss x T^2)."))
    warm_start: bool = field(
        default=False,
        metadata=_help("Continue training the incumbent adapter instead of a fresh LoRA."),
    )
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata=_help(
            "Recompute activations to save memory (slower). None: on when a batch can exceed "
            "4096 tokens (long prompts)."
        ),
    )
    cpu_bf16: bool | None = field(
        default=None,
        metadata=_help(
            "bf16 autocast when training on the CPU. None: on when the CPU has native bf16 "
            "(AVX512-BF16 or AMX), where it is ~1.4x faster than fp32; weights stay fp32."
        ),
    )
    seed: int = field(default=42, metadata=_help("Seed for LoRA init and data order."))
    # --- evaluation ----------------------------------------------------------------------------
    eval_max_new_tokens: int = field(
        default=256, metadata=_help("Cap on generated tokens per eval item.")
    )
    eval_top_logprobs: int = field(
        default=5, metadata=_help("Top-k logprobs per generated eval token (confidence scorers).")
    )
    eval_incumbent: bool = field(
        default=True,
        metadata=_help(
            "Score the incumbent adapter on the eval split too. The proxy turns it off: its "
            "promotion gate measures the incumbent itself, through the serving vLLM."
        ),
    )
    eval_base_max_rows: int = field(
        default=50,
        metadata=_help(
            "Held-out rows the base model is scored on (its score only moves with the split, "
            "and its long unpruned answers are the slowest part of an eval); 0 skips it."
        ),
    )

    def __post_init__(self) -> None:
        self._check_ranges()
        unknown = set(self.finish_reasons) - FINISH_REASONS
        if not self.finish_reasons or unknown:
            raise ValueError(
                f"finish_reasons must be a non-empty subset of {sorted(FINISH_REASONS)}, "
                f"got {list(self.finish_reasons)}"
            )
        for pattern in self.refusal_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"refusal pattern {pattern!r} is not a regex: {exc}") from None

    def _check_ranges(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.min_rows >= 2, "min_rows must be >= 2"),
            (self.min_eval_rows >= 1, "min_eval_rows must be >= 1"),
            (self.max_rows >= self.min_rows, "max_rows must be >= min_rows"),
            (0.0 < self.eval_fraction < 1.0, "eval_fraction must be in (0, 1)"),
            (
                0.0 <= self.calibration_fraction < 1.0 - self.eval_fraction,
                "calibration_fraction must be in [0, 1 - eval_fraction)",
            ),
            (self.calibration_max_rows >= 1, "calibration_max_rows must be >= 1"),
            (0.0 <= self.gold_holdout_fraction <= 1.0, "gold_holdout_fraction must be in [0, 1]"),
            (self.eval_max_rows >= self.min_eval_rows, "eval_max_rows must be >= min_eval_rows"),
            (0.0 < self.prune_min_share <= 1.0, "prune_min_share must be in (0, 1]"),
            (self.prune_min_chars >= 1, "prune_min_chars must be >= 1"),
            (self.closed_set_max >= 0, "closed_set_max must be >= 0"),
            (self.eval_base_max_rows >= 0, "eval_base_max_rows must be >= 0"),
            (self.epochs > 0, "epochs must be > 0"),
            (self.lr > 0, "lr must be > 0"),
            (self.lora_r >= 1 and self.lora_alpha >= 1, "lora_r and lora_alpha must be >= 1"),
            (self.lora_layers >= 0, "lora_layers must be >= 0"),
            (0.0 <= self.lora_dropout < 1.0, "lora_dropout must be in [0, 1)"),
            (0.0 < self.label_set_min_share <= 1.0, "label_set_min_share must be in (0, 1]"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size, grad_accum must be >= 1"),
            (self.max_seq_len >= 16, "max_seq_len must be >= 16"),
            (0.0 <= self.kd_alpha <= 1.0, "kd_alpha must be in [0, 1]"),
            (self.kd_temperature > 0, "kd_temperature must be > 0"),
            (self.closed_set_student in CLOSED_SET_STUDENTS, "closed_set_student: vote or lora"),
            (self.vote_k >= 1 and self.vote_power >= 0, "vote_k >= 1, vote_power >= 0"),
            (self.vote_prior >= 0, "vote_prior must be >= 0"),
            (0 <= self.vote_head_weight <= 1, "vote_head_weight must be in [0, 1]"),
            (self.extraction_student in EXTRACTION_STUDENTS, "extraction_student: spans or lora"),
            (self.span_hidden >= 1 and self.span_epochs >= 1, "span_hidden, span_epochs >= 1"),
            (self.span_folds >= 2, "span_folds must be >= 2"),
            (self.eval_max_new_tokens >= 1, "eval_max_new_tokens must be >= 1"),
            (0 <= self.eval_top_logprobs <= 20, "eval_top_logprobs must be in [0, 20]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    # --- (de)serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are an error (a typo must not pass silently)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {sorted(unknown)}")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**values)


def split_csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
