"""`distill train` when no server runs: snapshot the DuckDB file, select, train, evaluate,
and record the run in its `runs` table (nobody else owns the file, so this process may
write it, briefly, at the start and at the end of the run).

With a running server, `distill train --now` asks the server instead (its scheduler runs
the same `trainer.run` in a subprocess, then decides about promotion).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from proxy.logstore.backend import LogStoreUnavailable
from proxy.loop.train_config import train_config_from_settings
from proxy.settings import Settings
from proxy.student.encoder import encoder_tokenizer
from proxy.student.model import resolve_base_model
from trainer.config import TrainConfig
from trainer.dataset import DatasetSelection, NotEnoughData, parse_since, select_dataset
from trainer.feedback import gold_lines
from trainer.run import EXIT_NOT_ENOUGH_DATA, new_run_id

Echo = Callable[[str], None]
SNAPSHOT_NAME = "snapshot.parquet"  # the server's runs use the same name
CLI_TRIGGER = "cli"


def load_train_config(settings: Settings, config_path: Path | None) -> TrainConfig:
    """`TrainConfig` from the settings, overridden by TrainConfig fields from a JSON file or
    a TOML file's ``[train]`` table (its top-level keys are server settings, already applied
    through the ``train_*`` settings)."""
    overrides: dict[str, Any] = {}
    if config_path is not None:
        text = config_path.read_text()
        if config_path.suffix == ".toml":
            table = tomllib.loads(text).get("train")
            overrides = table if isinstance(table, dict) else {}
        else:
            overrides = json.loads(text)
    base = train_config_from_settings(settings).to_dict()
    return TrainConfig.from_dict({**base, **overrides})


def _vote_encoder(settings: Settings, cfg: TrainConfig) -> tuple[TrainConfig, Any]:
    """The encoder a local run embeds with (`encoder_url`); without one, and without a
    server running its own, closed-set and extraction tasks get the LoRA student."""
    from trainer.encoder import Encoder

    if settings.encoder_url:
        tokenizer = encoder_tokenizer(settings)
        name = settings.encoder_served_name
        return cfg, Encoder(settings.encoder_url, name, str(tokenizer) if tokenizer else None)
    cfg = dataclasses.replace(cfg, closed_set_student="lora", extraction_student="lora")
    return cfg, None


def export_from_db(
    db: Path | str, dest: Path, since: datetime | None, exclude_tasks: tuple[str, ...] = ()
) -> int:
    """Writes the snapshot (without the `exclude_tasks`); returns how many ``store: false``
    rows were left out of it."""
    from proxy.logstore.snapshot import export_snapshot, open_readonly

    with open_readonly(db) as conn:
        export_snapshot(conn, dest, since, exclude_tasks=exclude_tasks)
        where, params = "store IS NOT DISTINCT FROM false", []
        if since is not None:
            where += " AND created_at >= ?"
            params.append(since)
        row = conn.execute(f"SELECT count(*) FROM requests WHERE {where}", params).fetchone()
    return int(row[0]) if row else 0


def format_selection(selection: DatasetSelection) -> list[str]:
    summary = selection.summary()
    counts = summary["counts"]
    rejected = (
        ", ".join(f"{k} {v}" for k, v in counts.items() if v and k not in ("total", "selected"))
        or "none"
    )
    lines = [
        f"logged rows: {counts.get('total', 0)}; usable: {counts.get('selected', 0)}",
        f"filtered out: {rejected}",
        f"split: {summary['train_rows']} train / {summary['eval_rows']} eval "
        f"(+{summary['eval_held_back']} eval rows held back by train_eval_max_rows)",
        f"soft labels (teacher logprobs): {summary['soft_label_rows']} train rows",
        *gold_lines(counts, summary.get("feedback"), None),
    ]
    if summary["closed_set"]:
        labels = summary["closed_set"]
        lines.append(
            f"closed set: {len(labels)} labels ({', '.join(labels[:5])}"
            f"{', ...' if len(labels) > 5 else ''})"
        )
    prefix = summary["prompt_prefix"]
    if prefix:
        state = "pruned" if prefix["pruned"] else "not pruned (train_prune_prompt is off)"
        lines.append(
            f"shared system prompt: {prefix['chars']} chars in "
            f"{prefix['share']:.0%} of rows, {state}"
        )
    return lines


def train_command(
    settings: Settings,
    since: str | None,
    dry_run: bool,
    config_path: Path | None = None,
    *,
    base_model: str | None = None,
    echo: Echo = print,
) -> int:
    """Runs one distillation from the DuckDB file. Exit codes: 0 ok, 1 failed, 2 not enough
    data. The caller has checked that no server owns the file."""
    try:
        cfg = load_train_config(settings, config_path)
        since_at = parse_since(since)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        echo(f"error: {exc}")
        return 1
    if dry_run:
        return _dry_run(settings, cfg, since_at, echo)
    return _real_run(settings, cfg, since_at, base_model, echo)


def _dry_run(settings: Settings, cfg: TrainConfig, since: datetime | None, echo: Echo) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="distill-dry-run-"))
    try:
        unstored = export_from_db(
            settings.db, tmp / SNAPSHOT_NAME, since, settings.excluded_tasks()
        )
        selection: DatasetSelection | None
        problem: str | None = None
        try:
            selection = select_dataset(tmp / SNAPSHOT_NAME, cfg, since)
        except NotEnoughData as exc:
            selection, problem = exc.selection, str(exc)
    except (OSError, duckdb.Error, LogStoreUnavailable) as exc:
        echo(f"error: {exc}")
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if selection is not None:
        # store:false rows never reach a snapshot; count them here so the filter shows.
        selection.counts["store_false"] = selection.counts.get("store_false", 0) + unstored
        selection.counts["total"] = selection.counts.get("total", 0) + unstored
        for line in format_selection(selection):
            echo(line)
    if problem:
        echo(f"not enough data: {problem}")
        return EXIT_NOT_ENOUGH_DATA
    echo("dry run: nothing trained")
    return 0


def _real_run(
    settings: Settings, cfg: TrainConfig, since: datetime | None, base_model: str | None, echo: Echo
) -> int:
    from trainer.run import run_distillation
    from trainer.runfiles import write_error

    run_id = new_run_id()
    run_dir = settings.data_dir / "runs" / run_id
    try:
        run_dir.mkdir(parents=True)
        export_from_db(settings.db, run_dir / SNAPSHOT_NAME, since, settings.excluded_tasks())
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        record_run_start(settings.db, run_id, cfg)
    except (OSError, duckdb.Error, LogStoreUnavailable) as exc:
        echo(f"error: {exc}")
        return 1
    echo(f"run {run_id}: training in {run_dir}")
    cfg, encoder = _vote_encoder(settings, cfg)
    try:
        report = run_distillation(
            run_dir / SNAPSHOT_NAME,
            run_dir,
            cfg,
            base_model or str(resolve_base_model(settings)),
            None,
            None,
            since,
            run_id,
            encoder,
        )
    except NotEnoughData as exc:
        write_error(run_dir, exc)
        record_run_end(
            settings.db, run_id, "failed", f"not enough data: {exc}", None, run_dir, echo
        )
        echo(f"not enough data: {exc}")
        return EXIT_NOT_ENOUGH_DATA
    except Exception as exc:
        # Recorded, then re-raised: the traceback is the user's best clue.
        write_error(run_dir, exc)
        record_run_end(
            settings.db, run_id, "failed", f"{type(exc).__name__}: {exc}", None, run_dir, echo
        )
        raise
    record_run_end(
        settings.db,
        run_id,
        "trained",
        "trained without a server: start `distill serve` to evaluate and promote",
        report,
        run_dir,
        echo,
    )
    echo(f"artifacts: {run_dir}")
    return 0


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def record_run_start(db: Path | str, run_id: str, cfg: TrainConfig) -> None:
    from proxy.logstore.snapshot import open_writable

    with open_writable(db) as conn:
        now = _now()
        conn.execute(
            "INSERT INTO runs (id, created_at, started_at, status, trigger, config_json, pid) "
            "VALUES (?, ?, ?, 'running', ?, ?, ?)",
            [run_id, now, now, CLI_TRIGGER, json.dumps(cfg.to_dict()), os.getpid()],
        )


def record_run_end(
    db: Path | str,
    run_id: str,
    status: str,
    reason: str,
    report: dict[str, Any] | None,
    run_dir: Path,
    echo: Echo = print,
) -> None:
    metrics = None
    if report:
        keep = ("n", "agreement", "exact_match", "metric")
        metrics = {
            role: {k: v for k, v in res.items() if k in keep}
            for role, res in report["evaluation"].items()
            if isinstance(res, dict)
        }
    from proxy.logstore.sink import FAILURES
    from proxy.logstore.snapshot import open_writable

    try:
        with open_writable(db) as conn:
            conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, reason = ?, metrics_json = ?, "
                "adapter_path = ?, report_path = ? WHERE id = ?",
                [
                    _now(),
                    status,
                    reason[:2000],
                    json.dumps(metrics) if metrics else None,
                    str(run_dir / "adapter") if report else None,
                    str(run_dir / "report.json") if report else None,
                    run_id,
                ],
            )
    except FAILURES as exc:  # the run's files stand; only the bookkeeping failed
        echo(f"warning: could not record run {run_id} in {db}: {exc}")
