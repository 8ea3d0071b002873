"""Trainer benchmark on a Banking77 slice: one real distillation run of SmolLM2-135M.

Not a test (no ``test_`` prefix): run it by hand, under the heavy-job lock:

    flock /tmp/heavy.lock .venv/bin/python tests/trainer/bench_trainer_banking77.py \
        --model DIR --rows 1000 --epochs 2 --kd-alpha 0.5 --prune --out /tmp/b77-soft

The "teacher" answers the gold label (the benchmark's replay teacher at accuracy 1.0) with
top-5 logprobs shaped like a real teacher's (confusable labels get mass), the app prompt is
the benchmark's system prompt listing the 77 labels. The rows go through the real pipeline:
a Parquet snapshot with the log's columns -> `run_distillation` (selection, LoRA SFT +
optional KD, evaluation of candidate and base on the trainer's own held-out split). Extra
numbers printed here: the candidate without the closed-set constraint and the base with it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: bench/, tests/
from bench.banking77.data import (  # noqa: E402
    build_messages,
    load_categories,
    load_split,
    traffic_order,
)
from bench.banking77.replay_teacher import TeacherConfig, build_teacher  # noqa: E402
from tests.trainer.trainer_rows import build_row, write_snapshot  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402


def teacher_rows(n: int, top_k: int) -> list[dict[str, Any]]:
    labels = load_categories()
    teacher = build_teacher(TeacherConfig(accuracy=1.0, latency_ms=0.0), tokenizer="smollm2")
    queries = traffic_order(load_split().train)[:n]
    rows = []
    for i, example in enumerate(queries):
        messages = build_messages(example.text, labels)
        completion, _ = teacher.complete(
            {"messages": messages, "logprobs": True, "top_logprobs": top_k}
        )
        choice = completion.choices[0]
        rows.append(
            build_row(
                i,
                answer=choice.text,
                system=messages[0]["content"],
                question=example.text,
                teacher_logprobs_json=json.dumps(choice.logprobs),
            )
        )
    return rows


def extra_evals(
    report: dict[str, Any], model: str, cfg: TrainConfig, snapshot: Path
) -> dict[str, Any]:
    """Candidate without the choice constraint, base with it (same eval rows)."""
    from trainer.backends import HFBackend
    from trainer.compare import served_as_of
    from trainer.dataset import select_dataset
    from trainer.evaluate import ServedAs, evaluate_model, max_new_tokens_for

    selection = select_dataset(snapshot, cfg)
    rows = selection.eval
    max_new = max_new_tokens_for([r.completion for r in rows], cfg.eval_max_new_tokens)
    served = served_as_of(Path(report["adapter_path"]))
    out = {}
    cand = evaluate_model(
        HFBackend(model, Path(report["adapter_path"])),
        rows,
        ServedAs(served.prompt_prefix, None),
        max_new,
        5,
    )
    out["candidate_without_closed_set"] = cand["agreement"]
    base = evaluate_model(HFBackend(model), rows, ServedAs(None, selection.closed_set), max_new, 5)
    out["base_with_closed_set"] = base["agreement"]
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, help="HF dir of SmolLM2-135M-Instruct")
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--kd-alpha", type=float, default=0.0)
    p.add_argument("--kd-temperature", type=float, default=2.0)
    p.add_argument("--prune", action="store_true")
    p.add_argument("--eval-rows", type=int, default=100)
    p.add_argument("--eval-fraction", type=float, default=0.1)
    p.add_argument("--base-rows", type=int, default=0, help="eval rows for the base model")
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-layers", type=int, default=0, help="top N layers only (0: all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--cpu-bf16", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--extra", action="store_true", help="also the extra evaluations")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    from trainer.run import run_distillation

    args.out.mkdir(parents=True, exist_ok=True)
    snapshot = write_snapshot(args.out / "snapshot.parquet", teacher_rows(args.rows, 5))
    cfg = TrainConfig(
        epochs=args.epochs,
        kd_alpha=args.kd_alpha,
        kd_temperature=args.kd_temperature,
        prune_prompt=args.prune,
        eval_fraction=args.eval_fraction,
        eval_max_rows=args.eval_rows,
        eval_base_max_rows=args.base_rows,
        lr=args.lr,
        lora_r=args.lora_r,
        lora_alpha=args.lora_r,
        lora_layers=args.lora_layers,
        cpu_bf16={"auto": None, "on": True, "off": False}[args.cpu_bf16],
        batch_size=args.batch_size,
        max_seq_len=2048,
    )
    started = time.monotonic()
    report = run_distillation(snapshot, args.out / "run", cfg, args.model)
    total = time.monotonic() - started
    tr, ev = report["training"], report["evaluation"]
    summary = {
        "rows": args.rows,
        "train_rows": report["dataset"]["train_rows"],
        "eval_rows": ev["eval_rows"],
        "epochs": args.epochs,
        "kd_alpha": args.kd_alpha,
        "kd_temperature": args.kd_temperature,
        "pruned": args.prune,
        "lr": args.lr,
        "lora_r": args.lora_r,
        "lora_layers": args.lora_layers,
        "batch_size": args.batch_size,
        "cpu_bf16": args.cpu_bf16,
        "steps": tr["steps"],
        "train_seconds": tr["train_seconds"],
        "seconds_per_100_rows_per_epoch": round(tr["seconds_per_100_rows"] / args.epochs, 1),
        "loss_first": tr["loss_first"],
        "loss_last": tr["loss_last"],
        "soft_labels": tr["soft_labels"] if tr["kd_active"] else None,
        "candidate_agreement": ev["candidate"]["agreement"],
        "base_agreement": ev["base"]["agreement"] if ev["base"] else None,
        "candidate_coverage_sequence_prob": ev["candidate"]["coverage"]["sequence_prob"],
        "eval_seconds": report["durations"]["evaluate"],
        "total_seconds": round(total, 1),
    }
    if args.extra:
        summary.update(extra_evals(report, args.model, cfg, snapshot))
    (args.out / "bench.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
