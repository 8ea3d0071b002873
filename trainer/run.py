"""One distillation run: snapshot -> dataset -> LoRA (hard + soft labels) -> evaluation, or
for a closed-set or span-shaped extraction task a student on the encoder (``classifier/``).

    python -m trainer.run --snapshot S --run-dir D --base-model M [--config-json J]
        [--incumbent-adapter A] [--eval-url URL --eval-model NAME] [--since 7d]

This is what the server's scheduler spawns as a separate process (and what
`distill train` calls in-process when no server runs). The run dir receives ``adapter/``
(PEFT, loadable by vLLM, with ``distill_adapter.json``), ``report.json``, ``manifest.json``,
``progress.json`` and ``train.log``. On failure the exit code is non-zero and the reason
is in ``error.txt`` (exit 2: not enough data, 1: anything else). Multi-GPU:
``accelerate launch -m trainer.run ...`` (only rank 0 evaluates and writes the report).
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config import TrainConfig
from trainer.convert_gguf import DEFAULT_MODEL_NAME, convert, is_converted
from trainer.dataset import DatasetSelection, NotEnoughData, parse_since, select_dataset
from trainer.runfiles import write_error, write_json_atomic, write_phase
from trainer.spans import SpanShape, span_shape
from trainer.vote import VOTE_DIR, query_text

if TYPE_CHECKING:
    from trainer.compare import EvalServer
    from trainer.encoder import Encoder

log = logging.getLogger("trainer.run")

EXIT_NOT_ENOUGH_DATA = 2


def new_run_id(now: datetime | None = None) -> str:
    """``YYYYmmdd-HHMMSS-<4 hex>`` (UTC): sortable, unique enough for one machine."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def run_distillation(
    snapshot: Path,
    run_dir: Path,
    cfg: TrainConfig,
    base_model: str | Path,
    incumbent_adapter: Path | None = None,
    eval_server: EvalServer | None = None,
    since: datetime | None = None,
    run_id: str | None = None,
    encoder: Encoder | None = None,
) -> dict[str, Any]:
    """Runs everything and returns the report (also written to ``run_dir/report.json``).

    ``eval_server``: evaluate through a running vLLM (the candidate is hot-loaded under a
    throwaway name); None evaluates in-process with transformers.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = run_id or run_dir.name
    with _log_to(run_dir / "train.log"):
        return _run(
            snapshot, run_dir, cfg, str(base_model), incumbent_adapter, eval_server, since, run_id,
            encoder,
        )  # fmt: skip


def _run(
    snapshot: Path,
    run_dir: Path,
    cfg: TrainConfig,
    base_model: str,
    incumbent: Path | None,
    eval_server: EvalServer | None,
    since: datetime | None,
    run_id: str,
    encoder: Encoder | None = None,
) -> dict[str, Any]:
    from trainer.compare import compare_models, write_adapter_metadata
    from trainer.report import build_report, summary_lines

    durations: dict[str, float] = {}
    t0 = time.monotonic()
    log.info("run %s: snapshot=%s base=%s incumbent=%s", run_id, snapshot, base_model, incumbent)
    write_phase(run_dir, "selecting")
    selection = select_dataset(snapshot, cfg, since)
    write_json_atomic(run_dir / "manifest.json", {"run_id": run_id, **selection.manifest()})
    log.info("dataset: %s", json.dumps(selection.summary()["counts"]))
    durations["select"] = time.monotonic() - t0

    shape = _shape(selection)
    student = _encoder_student(selection, cfg, shape)
    if student is not None:
        if encoder is None or (student == "spans" and encoder.tokenizer is None):
            # Not a LoRA run instead: minutes of CPU for a student the task does not want.
            raise ValueError(
                f"this task's {student} student needs the encoder server (--encoder-url, and "
                "--encoder-tokenizer for spans; the proxy passes them once its encoder is "
                "ready); or set closed_set_student / extraction_student = lora"
            )
        fit_args = (snapshot, run_dir, cfg, selection, encoder, durations, t0, run_id)
        return _encoder_run(*fit_args, shape if student == "spans" else None)
    # torch/trl only once there is something to train (`trainer.run` stays light to import).
    from trainer.sft import train_adapter

    t1 = time.monotonic()
    write_phase(run_dir, "training")
    train = train_adapter(selection, base_model, run_dir, cfg, incumbent)
    durations["train"] = time.monotonic() - t1
    if not train.is_main_process:
        return {}  # accelerate: rank 0 evaluates and reports
    write_adapter_metadata(train.adapter_dir, run_id, base_model, selection)

    t2 = time.monotonic()
    write_phase(run_dir, "evaluating", steps=train.steps)
    evaluation = compare_models(
        selection, cfg, base_model, train.adapter_dir, incumbent, eval_server, run_id
    )
    durations["evaluate"] = time.monotonic() - t2
    durations["total"] = time.monotonic() - t0
    report = build_report(
        run_id=run_id,
        snapshot=snapshot,
        base_model=base_model,
        incumbent=incumbent,
        cfg=cfg,
        selection=selection,
        train=train,
        evaluation=evaluation,
        durations=durations,
    )
    write_json_atomic(run_dir / "report.json", report)
    write_phase(run_dir, "done", steps=train.steps)
    for line in summary_lines(report, run_dir):
        log.info("%s", line)
    return report


def _encoder_student(
    selection: DatasetSelection, cfg: TrainConfig, shape: SpanShape | None
) -> str | None:
    """`vote` (a closed set), `spans` (a span-shaped extraction) or None (LoRA)."""
    if selection.closed_set:
        return "vote" if cfg.closed_set_student == "vote" else None
    if cfg.extraction_student == "spans" and shape is not None:
        return "spans"
    return None


def _shape(selection: DatasetSelection) -> SpanShape | None:
    """The span shape of an open task's answers (a closed set is never one)."""
    if selection.closed_set:
        return None
    rows = selection.train
    return span_shape([r.completion for r in rows], [query_text(r.messages) for r in rows])


def _encoder_run(
    snapshot: Path,
    run_dir: Path,
    cfg: TrainConfig,
    selection: DatasetSelection,
    encoder: Encoder,
    durations: dict[str, float],
    t0: float,
    run_id: str,
    shape: SpanShape | None,
) -> dict[str, Any]:
    """A student on the encoder (the span student for a `shape`, else the vote): embed,
    store, fit a head (seconds); the proxy's gate measures it on the held-out rows, so the
    trainer does not evaluate it a second time."""
    from trainer.span_fit import fit_spans
    from trainer.vote_fit import fit_vote

    t1 = time.monotonic()
    write_phase(run_dir, "training")
    if shape is not None:
        fit = fit_spans(selection, shape, cfg, encoder, run_dir / VOTE_DIR)
    else:
        fit = fit_vote(selection, cfg, encoder, run_dir / VOTE_DIR, run_dir.parent / ".vote-cache")
    durations["train"] = time.monotonic() - t1
    durations["total"] = time.monotonic() - t0
    report = {
        "run_id": run_id,
        "snapshot": str(snapshot),
        "student_kind": fit["kind"],
        "config": cfg.to_dict(),
        "dataset": selection.summary(),
        "vote": fit,
        "durations_s": {k: round(v, 3) for k, v in durations.items()},
    }
    write_json_atomic(run_dir / "report.json", report)
    write_phase(run_dir, "done")
    log.info("run %s: %s student fitted in %.1f s", run_id, fit["kind"], durations["total"])
    return report


@contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Mirrors every log record of the run into ``train.log`` (failures with traceback)."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    except BaseException:
        log.exception("run failed")  # into train.log too; the caller decides what follows
        raise
    finally:
        root.removeHandler(handler)
        handler.close()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainer.run", description=__doc__.splitlines()[0] if __doc__ else None
    )
    p.add_argument("--snapshot", type=Path, required=True, help="Parquet snapshot of requests")
    p.add_argument("--run-dir", type=Path, required=True, help="output directory of the run")
    p.add_argument("--config-json", type=Path, help="TrainConfig as JSON (TrainConfig.to_dict)")
    p.add_argument(
        "--base-model",
        help="HF dir or hub id of the student's base model, needed (the proxy passes the one "
        "it serves; the default student's directory is converted on first use)",
    )
    p.add_argument("--incumbent-adapter", type=Path, help="current adapter dir, if any")
    p.add_argument("--eval-url", help="student vLLM base URL (…/v1) to evaluate through")
    p.add_argument("--eval-model", help="base model name served at --eval-url")
    p.add_argument("--eval-incumbent-model", help="name the incumbent is served under")
    p.add_argument("--encoder-url", help="encoder vLLM base URL (…/v1) for a vote student")
    p.add_argument("--encoder-model", help="encoder model name served at --encoder-url")
    p.add_argument(
        "--encoder-tokenizer", help="the encoder's tokenizer.json (token offsets: span student)"
    )
    p.add_argument("--since", help="only rows since (ISO date/datetime or 7d, 12h, …)")
    p.add_argument("--run-id", help="run id (default: the run dir's name)")
    return p


def resolve_base_model_arg(value: str | None) -> str:
    """``--base-model``, needed: the proxy passes the model its student serves (the trainer
    never reads the proxy's settings). The default student's directory (an absolute path
    named like it) is converted from its GGUF first if nothing converted it yet."""
    if not value:
        raise ValueError("--base-model is needed (the proxy passes the model it serves)")
    path = Path(value)
    if path.is_absolute() and path.name == DEFAULT_MODEL_NAME and not is_converted(path):
        convert(path)
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = (
            TrainConfig.from_dict(json.loads(args.config_json.read_text()))
            if args.config_json
            else TrainConfig()
        )
        server = None
        if args.eval_url:
            from trainer.compare import EvalServer

            if not args.eval_model:
                raise ValueError("--eval-url needs --eval-model (the base model's served name)")
            server = EvalServer(
                args.eval_url.rstrip("/"), args.eval_model, args.eval_incumbent_model
            )
        encoder = None
        if args.encoder_url:
            from trainer.encoder import Encoder

            encoder = Encoder(
                args.encoder_url.rstrip("/"), args.encoder_model or "minilm", args.encoder_tokenizer
            )
        run_distillation(
            args.snapshot,
            args.run_dir,
            cfg,
            resolve_base_model_arg(args.base_model),
            args.incumbent_adapter,
            server,
            parse_since(args.since),
            args.run_id,
            encoder,
        )
    except NotEnoughData as exc:
        write_error(args.run_dir, exc)
        print(f"not enough data: {exc}", file=sys.stderr)
        return EXIT_NOT_ENOUGH_DATA
    except Exception as exc:
        # Process boundary: whatever failed, the scheduler finds the reason in error.txt;
        # re-raised so the traceback reaches stderr and the exit code is 1.
        write_error(args.run_dir, exc)
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
