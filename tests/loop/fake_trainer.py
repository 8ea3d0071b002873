"""A stand-in for ``python -m trainer.run`` in the loop's fast tests (the seam is the
`trainer_command` setting). It accepts the real trainer's arguments and writes what the real
one writes: ``adapter/`` (an ``adapter_config.json`` carrying ``fake_quality`` for the fake
vLLM), ``manifest.json`` (every teacher-answered snapshot row held out for eval),
``report.json``, ``progress.json``; or fails like it (``error.txt``, exit 1), or hangs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("ok", "crash", "hang"), default="ok")
    p.add_argument("--quality", default="good")
    p.add_argument("--quality-file", type=Path, default=None, help="overrides --quality")
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--closed-set", default="")
    p.add_argument(
        "--split-calibration", action="store_true", help="second half of the rows: calibration"
    )
    p.add_argument("--args-file", type=Path, default=None)
    p.add_argument("--snapshot", type=Path, required=True)
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--config-json", type=Path)
    p.add_argument("--run-id")
    p.add_argument("--base-model")
    p.add_argument("--incumbent-adapter")
    p.add_argument("--eval-url")
    p.add_argument("--eval-model")
    p.add_argument("--eval-incumbent-model")
    return p.parse_args(argv)


def _progress(run_dir: Path, step: int, total: int) -> None:
    (run_dir / "progress.json").write_text(
        json.dumps(
            {
                "phase": "training",
                "step": step,
                "max_steps": total,
                "loss": 1.0 / (step + 1),
                "eta_seconds": total - step,
            }
        )
    )


def main(argv: list[str]) -> int:
    args = _args(argv)
    run_dir = args.run_dir
    if args.args_file is not None:
        args.args_file.write_text(json.dumps(argv))
    _progress(run_dir, 0, 2)
    if args.mode == "hang":
        time.sleep(600)
    time.sleep(args.sleep)
    if args.mode == "crash":
        (run_dir / "error.txt").write_text("RuntimeError: fake trainer blew up\n")
        return 1
    with duckdb.connect() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM read_parquet(?) WHERE teacher_text IS NOT NULL ORDER BY id",
                [str(args.snapshot)],
            ).fetchall()
        ]
    quality = args.quality
    if args.quality_file is not None and args.quality_file.is_file():
        quality = args.quality_file.read_text().strip()
    adapter = run_dir / "adapter"
    adapter.mkdir(parents=True, exist_ok=True)
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 8, "fake_quality": quality})
    )
    cut = len(ids) // 2 if args.split_calibration else len(ids)
    (run_dir / "manifest.json").write_text(
        json.dumps(
            {
                "run_id": args.run_id,
                "train": [],
                "eval": [{"id": i, "prompt_hash": ""} for i in ids[:cut]],
                "calibration": [{"id": i, "prompt_hash": ""} for i in ids[cut:]],
            }
        )
    )
    closed = [c for c in args.closed_set.split(",") if c] or None
    (run_dir / "report.json").write_text(
        json.dumps(
            {
                "run_id": args.run_id,
                "status": "succeeded",
                "closed_set": closed,
                "prompt_prefix": None,
                "evaluation": {
                    "eval_rows": len(ids),
                    "candidate": {"n": len(ids), "agreement": 0.9, "backend": "fake"},
                },
            }
        )
    )
    _progress(run_dir, 2, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
