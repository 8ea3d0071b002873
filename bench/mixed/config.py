"""Command-line settings of the mixed benchmark: its tasks, their shares and accuracies.

The proxy side is the harness's (`bench.harness.settings`: the same README defaults and
recommended CPU settings as the Banking77 benchmark); the mixed benchmark's own is here.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness.settings import BenchSettings
from bench.harness.task import Task
from bench.tasks import banking77, clinc150, freeform, snips

HERE = Path(__file__).resolve().parent
DEFAULT_SEED = 24
# Issue 24's traffic: intents, intents with out-of-scope, extraction, the negative control.
DEFAULT_SHARES = {"banking77": 0.40, "clinc150": 0.25, "snips": 0.25, "freeform": 0.10}
# One model name for every call, as an app with one deployment sends: the proxy cannot
# tell the tasks apart by the model.
APP_MODEL = "support-app"

FULL: dict[str, Any] = {
    "requests": 4000,
    "retrain_every": 200,
    "concurrency": 8,
    "val_per_task": 60,
    "run_timeout": 3600.0,
    "train_min_rows": 180,
    "max_rounds": 20,
}
QUICK: dict[str, Any] = {
    "requests": 100,
    "retrain_every": 30,
    "concurrency": 4,
    "val_per_task": 8,
    "run_timeout": 1200.0,
    "train_min_rows": 10,
    "max_rounds": 1,
    "train_epochs": 1.0,
}
QUICK_EXTRA = {"DISTILL_TRAIN_EVAL_FRACTION": "0.25"}


def build_tasks(names: list[str] | None = None) -> dict[str, Task]:
    """The mixed benchmark's tasks by name, in report order."""
    every: dict[str, Task] = {
        "banking77": banking77.task(),
        "clinc150": clinc150.task(),
        "snips": snips.task(),
        "freeform": freeform.task(),
    }
    return {n: every[n] for n in (names or list(every))}


@dataclass(slots=True)
class MixedSettings:
    """The proxy-side settings (`bench`) and what the mixed benchmark adds."""

    bench: BenchSettings
    shares: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SHARES))
    task_accuracy: dict[str, float] = field(default_factory=dict)
    val_per_task: int = 60
    name_tasks: bool = False
    model: str = APP_MODEL

    def public(self) -> dict[str, Any]:
        return {
            **self.bench.public(),
            "shares": self.shares,
            "task_accuracy": self.task_accuracy,
            "val_per_task": self.val_per_task,
            "name_tasks": self.name_tasks,
            "model": self.model,
        }


def _pairs(items: list[str], flag: str) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in DEFAULT_SHARES:
            raise SystemExit(f"{flag} needs TASK=NUMBER with a task of {list(DEFAULT_SHARES)}")
        out[name] = float(value)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.mixed.run",
        description="Mixed traffic (Banking77, CLINC150, SNIPS, free-form) through one proxy.",
    )
    a = p.add_argument
    a("--quick", action="store_true", help="smoke run: 100 requests, one tiny round")
    a("--requests", type=int, help="traffic requests (full 4000, quick 100)")
    a(
        "--share",
        action="append",
        default=[],
        metavar="TASK=SHARE",
        help="a task's share of the traffic (default 40/25/25/10 %%); 0 leaves it out",
    )
    a(
        "--accuracy",
        action="append",
        default=[],
        metavar="TASK=ACC",
        help="the replay teacher's accuracy on a task (default: the task's stated one)",
    )
    a(
        "--name-tasks",
        action="store_true",
        help="send each request's task name (x-distill-task); default: the proxy finds them",
    )
    a("--retrain-every", type=int, help="teacher-answered rows per re-distillation round")
    a("--max-rounds", type=int, help="stop re-distilling after this many rounds")
    a("--concurrency", type=int, help="concurrent client requests")
    a("--stream-fraction", type=float, default=0.3, help="share of streaming requests")
    a("--target-agreement", type=float, default=0.8, help="calibration target (0: static)")
    a("--val-per-task", type=int, help="validation queries per task measured per round")
    a("--teacher-latency-ms", type=float, default=300.0)
    a("--student-url", help="use this vLLM (/v1) instead of the embedded one")
    a("--epochs", type=float, dest="train_epochs", help="training epochs per run")
    a("--run-timeout", type=float, help="seconds one re-distillation run may take")
    a("--ready-timeout", type=float, default=900.0, help="seconds for the proxy to get ready")
    a("--seed", type=int, default=DEFAULT_SEED)
    a("--out", type=Path, dest="out_dir", help="results directory")
    a("--set", action="append", default=[], metavar="NAME=VALUE", help="extra proxy setting")
    return p  # fmt: skip


def parse_settings(argv: list[str] | None = None) -> MixedSettings:
    args = _parser().parse_args(argv)
    preset = QUICK if args.quick else FULL
    values = {**preset, **{k: v for k, v in vars(args).items() if v is not None}}
    extra = dict(QUICK_EXTRA) if args.quick else {}
    for item in values.pop("set"):
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set needs NAME=VALUE, got {item!r}")
        extra[name.strip().upper()] = value
    shares = {**DEFAULT_SHARES, **_pairs(values.pop("share"), "--share")}
    accuracy = _pairs(values.pop("accuracy"), "--accuracy")
    mixed = {k: values.pop(k) for k in ("val_per_task", "name_tasks")}
    if values["target_agreement"] == 0:
        values["target_agreement"] = None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    values["work_dir"] = HERE / "work" / f"{'quick' if args.quick else 'full'}-{stamp}"
    if args.out_dir is None:
        values["out_dir"] = HERE / ("work/quick-results" if args.quick else "results")
    # No static-cascade arm here: the Banking77 benchmark measures that one.
    bench = BenchSettings(extra=extra, static_requests=0, val_limit=0, **values)
    return MixedSettings(
        bench=bench,
        shares={k: v for k, v in shares.items() if v > 0},
        task_accuracy=accuracy,
        **mixed,
    )
