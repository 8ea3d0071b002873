"""`trainer.run` learns the base model from ``--base-model`` only (it never reads the proxy's
settings); the proxy's scheduler always passes one."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.loop.scheduler import base_model_arg
from proxy.settings import Settings
from proxy.student.model import default_model_dir
from tests.trainer.trainer_rows import build_row, write_snapshot
from trainer.run import main, resolve_base_model_arg


def test_a_hub_id_or_a_plain_directory_passes_unchanged(tmp_path: Path) -> None:
    assert resolve_base_model_arg("HuggingFaceTB/SmolLM2-135M-Instruct") == (
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert resolve_base_model_arg(str(tmp_path / "my-model")) == str(tmp_path / "my-model")


def test_without_base_model_the_run_fails_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--base-model"):
        resolve_base_model_arg(None)
    snapshot = write_snapshot(tmp_path / "s.parquet", [build_row(i) for i in range(3)])
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError):
        main(["--snapshot", str(snapshot), "--run-dir", str(run_dir)])
    assert "--base-model" in (run_dir / "error.txt").read_text()


def test_the_scheduler_always_passes_a_base_model(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, student_base_model=None)
    assert base_model_arg(settings) == str(default_model_dir(settings).resolve())
    assert base_model_arg(Settings(data_dir=tmp_path, student_base_model="org/m")) == "org/m"
