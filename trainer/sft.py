"""Hard-label training: TRL `SFTTrainer` + PEFT LoRA on prompt -> teacher completion.

Rows are tokenised here, the way TRL tokenises conversational prompt/completion rows (chat
template of the prompt with the generation prompt, then of prompt + assistant answer; the
completion starts where the two diverge; loss on the completion only), because the soft-label
targets (`trainer.align`) must point at the exact student token positions. TRL then sees an
already-processed dataset (``input_ids`` + ``labels``) and skips its own tokenisation.

Rows longer than ``max_seq_len`` are dropped rather than truncated (a cut answer would teach
the student to stop mid-sentence) and counted.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig

from trainer.align import SKIP_REASONS, TokenMapper, align_soft_labels
from trainer.chat import tokenize_row
from trainer.config import TrainConfig
from trainer.dataset import DatasetSelection, TrainRow
from trainer.hardware import cpu_has_native_bf16
from trainer.kd import DistillSFTTrainer, KDDataCollator
from trainer.progress import ProgressCallback

log = logging.getLogger("trainer.sft")
# Above this many tokens per batch (longest row x batch size), activations are recomputed.
CHECKPOINTING_TOKENS = 4096


@dataclass
class SoftLabelStats:
    rows_with_logprobs: int = 0
    positions_used: int = 0
    positions_skipped: Counter[str] = field(default_factory=Counter)
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_with_logprobs": self.rows_with_logprobs,
            "positions_used": self.positions_used,
            "positions_skipped": sum(self.positions_skipped.values()),
            "skipped_by_reason": {r: self.positions_skipped[r] for r in SKIP_REASONS},
            "student_completion_tokens": self.completion_tokens,
        }


@dataclass
class TrainResult:
    adapter_dir: Path
    is_main_process: bool
    examples: int
    dropped_too_long: int
    steps: int
    train_seconds: float
    loss_curve: list[dict[str, float]]
    soft_labels: SoftLabelStats
    kd_active: bool
    warm_started: bool
    device: str


def build_examples(
    tokenizer: PreTrainedTokenizerBase,
    selection: DatasetSelection,
    rows: list[TrainRow],
    max_seq_len: int,
    soft_labels: bool,
) -> tuple[list[dict[str, Any]], int, SoftLabelStats]:
    """Examples with input_ids/labels (+ kd_* columns when soft labels are on)."""
    mapper = TokenMapper(tokenizer)
    stats = SoftLabelStats()
    examples: list[dict[str, Any]] = []
    too_long = 0
    for row in rows:
        ids, start = tokenize_row(tokenizer, selection.student_messages(row), row.completion)
        if len(ids) > max_seq_len or start >= len(ids):
            too_long += 1
            continue
        example: dict[str, Any] = {"input_ids": ids, "labels": [-100] * start + ids[start:]}
        stats.completion_tokens += len(ids) - start
        if soft_labels:
            example.update(kd_positions=[], kd_ids=[], kd_logprobs=[])
            if row.teacher_logprobs:
                stats.rows_with_logprobs += 1
                targets = align_soft_labels(
                    mapper, tokenizer, ids[start:], row.completion, row.teacher_logprobs
                )
                stats.positions_used += targets.used
                stats.positions_skipped.update(targets.skipped)
                example.update(
                    kd_positions=[start + p for p in targets.positions],
                    kd_ids=targets.candidate_ids,
                    kd_logprobs=targets.candidate_logprobs,
                )
        examples.append(example)
    return examples, too_long, stats


def _device_setup(cfg: TrainConfig) -> tuple[str, torch.dtype, bool]:
    """Device, weight dtype, whether mixed precision runs in bf16."""
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return "cuda", torch.bfloat16 if bf16 else torch.float32, bf16
    # fp32 weights with bf16 autocast: without native bf16 the autocast is slower than fp32.
    bf16 = cpu_has_native_bf16() if cfg.cpu_bf16 is None else cfg.cpu_bf16
    return "cpu", torch.float32, bf16


def load_student(
    base_model: str | Path, cfg: TrainConfig, incumbent: Path | None, dtype: torch.dtype
) -> tuple[Any, LoraConfig | None, bool]:
    """The model to train and the LoRA config (None when warm-starting an adapter)."""
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=dtype)
    if cfg.warm_start and incumbent is not None:
        log.info("warm start from the incumbent adapter %s", incumbent)
        return PeftModel.from_pretrained(model, str(incumbent), is_trainable=True), None, True
    layers = top_layers(model.config.num_hidden_layers, cfg.lora_layers)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        # PEFT takes a layer subset only with the module names spelled out.
        target_modules="all-linear" if layers is None else linear_module_names(model),
        task_type="CAUSAL_LM",
        layers_to_transform=layers,
    )
    return model, lora, False


def linear_module_names(model: Any) -> list[str]:
    """Leaf names of the linear layers inside the transformer blocks (what "all-linear" means)."""
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and ".layers." in f".{name}"
        }
    )


def top_layers(n_layers: int, wanted: int) -> list[int] | None:
    """Indices of the top `wanted` layers (None: all). Frozen layers below the lowest adapted
    one need no backward pass: on a CPU a step was 1.8x cheaper with the top third adapted
    and 1.5x with the top half (tests/trainer/bench_trainer_banking77.py --lora-layers)."""
    if wanted <= 0 or wanted >= n_layers:
        return None
    return list(range(n_layers - wanted, n_layers))


def planned_steps(cfg: TrainConfig, n_examples: int, world_size: int = 1) -> int:
    per_step = cfg.batch_size * cfg.grad_accum * world_size
    return max(1, round(cfg.epochs * max(1, -(-n_examples // per_step))))


def use_gradient_checkpointing(cfg: TrainConfig, longest: int) -> bool:
    """Recompute activations when a batch can be long: a 135M student on 8 x 650-token rows
    (a 77-label system prompt, unpruned) needs ~15 GB of activations without it."""
    if cfg.gradient_checkpointing is not None:
        return cfg.gradient_checkpointing
    return longest * cfg.batch_size > CHECKPOINTING_TOKENS


def sft_config(
    run_dir: Path, cfg: TrainConfig, n_examples: int, bf16: bool, checkpointing: bool
) -> SFTConfig:
    total_steps = planned_steps(cfg, n_examples)
    return SFTConfig(
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type="linear",
        logging_steps=max(1, total_steps // 20),
        logging_first_step=True,
        save_strategy="no",
        report_to="none",
        seed=cfg.seed,
        max_length=cfg.max_seq_len,
        completion_only_loss=True,
        remove_unused_columns=False,  # keep the kd_* columns for the collator
        gradient_checkpointing=checkpointing,
        use_cpu=not torch.cuda.is_available(),
        bf16=bf16,
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def _prepare_examples(
    tokenizer: PreTrainedTokenizerBase, selection: DatasetSelection, cfg: TrainConfig
) -> tuple[list[dict[str, Any]], int, SoftLabelStats, bool]:
    """Examples, rows dropped as too long, soft-label stats, whether KD is on."""
    use_soft = cfg.kd_alpha > 0 and selection.soft_label_rows > 0
    examples, too_long, stats = build_examples(
        tokenizer, selection, selection.train, cfg.max_seq_len, use_soft
    )
    if not examples:
        raise ValueError(f"every train row is longer than max_seq_len={cfg.max_seq_len}")
    kd_active = use_soft and stats.positions_used > 0
    if not kd_active:  # no usable soft target at all: the plain (fused) hard-label path
        for ex in examples:
            for key in ("kd_positions", "kd_ids", "kd_logprobs"):
                ex.pop(key, None)
    return examples, too_long, stats, kd_active


def train_adapter(
    selection: DatasetSelection,
    base_model: str | Path,
    run_dir: Path,
    cfg: TrainConfig,
    incumbent_adapter: Path | None = None,
) -> TrainResult:
    """Trains the LoRA on the train split and saves it to ``run_dir/adapter``."""
    device, dtype, bf16 = _device_setup(cfg)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    examples, too_long, stats, kd_active = _prepare_examples(tokenizer, selection, cfg)
    model, lora, warm = load_student(base_model, cfg, incumbent_adapter, dtype)
    checkpointing = use_gradient_checkpointing(cfg, max(len(e["input_ids"]) for e in examples))
    trainer = DistillSFTTrainer(
        model=model,
        args=sft_config(run_dir, cfg, len(examples), bf16, checkpointing),
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=lora,
        data_collator=KDDataCollator(pad_token_id=tokenizer.pad_token_id),
        callbacks=[ProgressCallback(run_dir)],
        kd_alpha=cfg.kd_alpha if kd_active else 0.0,
        kd_temperature=cfg.kd_temperature,
    )
    trainer.remove_callback(PrinterCallback)  # ProgressCallback prints a cleaner line
    log.info(
        "training on %d rows (%d dropped as too long), ~%d steps, device=%s, bf16=%s, "
        "soft labels: %s, gradient checkpointing: %s",
        len(examples),
        too_long,
        planned_steps(cfg, len(examples), trainer.args.world_size),
        device,
        bf16,
        f"{stats.positions_used} positions" if kd_active else "off",
        checkpointing,
    )
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    adapter_dir = run_dir / "adapter"
    trainer.save_model(str(adapter_dir))
    _remove_if_empty(run_dir / "checkpoints")  # save_strategy="no": nothing was written
    return TrainResult(
        adapter_dir=adapter_dir,
        is_main_process=trainer.is_world_process_zero(),
        examples=len(examples),
        dropped_too_long=too_long,
        steps=trainer.state.global_step,
        train_seconds=seconds,
        loss_curve=_loss_curve(trainer.state.log_history),
        soft_labels=stats,
        kd_active=kd_active,
        warm_started=warm,
        device=device,
    )


def _loss_curve(history: list[dict[str, Any]]) -> list[dict[str, float]]:
    keys = ("step", "epoch", "loss", "ce_loss", "kd_loss", "learning_rate")
    return [{k: e[k] for k in keys if k in e} for e in history if "loss" in e]


def _remove_if_empty(path: Path) -> None:
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
