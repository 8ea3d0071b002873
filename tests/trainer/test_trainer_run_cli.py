"""The run entry point's failure contract and `distill train` without a server (dry run,
run bookkeeping), on hand-built rows; nothing here trains."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest

from proxy.commands.train import load_train_config, record_run_end, record_run_start, train_command
from proxy.settings import Settings
from tests.trainer.trainer_rows import build_row, write_db, write_snapshot
from trainer.config import TrainConfig
from trainer.run import EXIT_NOT_ENOUGH_DATA, main, new_run_id

LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]


def test_run_id_format() -> None:
    ids = {new_run_id() for _ in range(20)}
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", i) for i in ids)
    assert len(ids) > 1


def test_not_enough_data_exits_2_with_reason(tmp_path: Path) -> None:
    snapshot = write_snapshot(tmp_path / "s.parquet", [build_row(i) for i in range(3)])
    run_dir = tmp_path / "run"
    code = main(["--snapshot", str(snapshot), "--run-dir", str(run_dir), "--base-model", "x"])
    assert code == EXIT_NOT_ENOUGH_DATA
    error = (run_dir / "error.txt").read_text()
    assert error.startswith("NotEnoughData: only 3 usable")
    assert json.loads((run_dir / "progress.json").read_text())["phase"] == "failed"
    assert not (run_dir / "adapter").exists()


def test_other_failures_write_error_and_raise(tmp_path: Path) -> None:
    bad = tmp_path / "cfg.json"
    bad.write_text(json.dumps({"epochs": -1}))
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match="epochs"):
        main(
            [
                "--snapshot",
                str(tmp_path / "missing.parquet"),
                "--run-dir",
                str(run_dir),
                "--config-json",
                str(bad),
                "--base-model",
                "x",
            ]
        )
    assert (run_dir / "error.txt").read_text().startswith("ValueError: epochs must be > 0")


def test_missing_snapshot_is_reported(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(FileNotFoundError):
        main(
            [
                "--snapshot",
                str(tmp_path / "nope.parquet"),
                "--run-dir",
                str(run_dir),
                "--base-model",
                "x",
            ]
        )
    assert "FileNotFoundError" in (run_dir / "error.txt").read_text()
    log = (run_dir / "train.log").read_text()
    assert "run failed" in log and "Traceback" in log and "nope.parquet" in log


def settings_for(tmp_path: Path, **kw: object) -> Settings:
    return Settings(db=tmp_path / "log.duckdb", data_dir=tmp_path / "data", train_min_rows=10, **kw)  # type: ignore[arg-type]


def test_dry_run_prints_the_dataset(tmp_path: Path) -> None:
    rows = [build_row(i, answer=LABELS[i % 3]) for i in range(40)]
    rows += [build_row(100 + i, store=False) for i in range(4)]
    rows += [build_row(200, teacher_finish_reason="length")]
    write_db(tmp_path / "log.duckdb", rows)
    lines: list[str] = []
    code = train_command(settings_for(tmp_path), None, True, echo=lines.append)
    out = "\n".join(lines)
    assert code == 0, out
    assert "logged rows: 45; usable: 40" in out
    assert "store_false 4" in out and "finish_reason 1" in out
    assert re.search(r"split: \d+ train / \d+ eval", out)
    assert "closed set: 3 labels" in out and "dry run: nothing trained" in out
    assert not (tmp_path / "data" / "runs").exists()


def test_dry_run_not_enough_data(tmp_path: Path) -> None:
    write_db(tmp_path / "log.duckdb", [build_row(i) for i in range(4)])
    lines: list[str] = []
    code = train_command(settings_for(tmp_path), "30d", True, echo=lines.append)
    assert code == EXIT_NOT_ENOUGH_DATA
    assert lines[-1].startswith("not enough data:")


def test_dry_run_without_log(tmp_path: Path) -> None:
    lines: list[str] = []
    assert train_command(settings_for(tmp_path), None, True, echo=lines.append) == 1
    assert "no request log" in lines[-1]


def test_bad_since_is_an_error(tmp_path: Path) -> None:
    lines: list[str] = []
    assert train_command(settings_for(tmp_path), "yesterday-ish", True, echo=lines.append) == 1


def test_train_config_file_overrides_settings(tmp_path: Path) -> None:
    toml = tmp_path / "train.toml"
    toml.write_text("[train]\nepochs = 1.5\nkd_alpha = 0.0\n")
    cfg = load_train_config(settings_for(tmp_path, train_lr=1e-3), toml)
    assert (cfg.epochs, cfg.kd_alpha, cfg.lr, cfg.min_rows) == (1.5, 0.0, 1e-3, 10)
    js = tmp_path / "train.json"
    js.write_text(json.dumps({"lora_r": 4}))
    assert load_train_config(settings_for(tmp_path), js).lora_r == 4


def test_runs_table_bookkeeping(tmp_path: Path) -> None:
    db = write_db(tmp_path / "log.duckdb", [])
    record_run_start(db, "20250101-000000-abcd", TrainConfig())
    report = {
        "evaluation": {
            "eval_rows": 5,
            "candidate": {"agreement": 0.8, "n": 5, "examples": []},
            "incumbent": None,
        }
    }
    record_run_end(db, "20250101-000000-abcd", "trained", "ok", report, tmp_path / "run")
    with duckdb.connect(str(db), read_only=True) as conn:
        row = conn.execute(
            "SELECT status, trigger, CAST(metrics_json AS VARCHAR), adapter_path, finished_at "
            "FROM runs"
        ).fetchone()
    assert row is not None
    status, trigger, metrics, adapter, finished = row
    assert (status, trigger) == ("trained", "cli") and finished is not None
    assert json.loads(metrics) == {"candidate": {"agreement": 0.8, "n": 5}}
    assert adapter.endswith("run/adapter")


def test_toml_top_level_keys_are_settings_not_train_config(tmp_path: Path) -> None:
    toml = tmp_path / "distill.toml"
    toml.write_text('teacher_url = "http://t/v1"\n')
    assert load_train_config(settings_for(tmp_path), toml) == load_train_config(
        settings_for(tmp_path), None
    )
