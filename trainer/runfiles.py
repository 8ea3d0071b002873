"""The small files of a run dir other processes read while it goes (``progress.json``,
``error.txt``), written atomically. No torch: the run's entry point imports this first."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

PROGRESS = "progress.json"
ERROR = "error.txt"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def write_phase(run_dir: Path, phase: str, **extra: Any) -> None:
    """Progress outside the training loop (selecting, evaluating, done, failed)."""
    write_json_atomic(run_dir / PROGRESS, {"phase": phase, "updated_at": time.time(), **extra})


def write_error(run_dir: Path, exc: BaseException) -> None:
    """The reason a run failed, for the scheduler (``error.txt``) and for progress readers."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ERROR).write_text(f"{type(exc).__name__}: {exc}\n")
    write_phase(run_dir, "failed", error=f"{type(exc).__name__}: {exc}")
