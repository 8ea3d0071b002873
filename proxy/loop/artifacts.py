"""What a finished training run left in ``runs/<id>/``, read defensively.

The trainer (a separate process) writes ``adapter/``, ``report.json``, ``manifest.json``,
``progress.json``, ``train.log`` and, on failure, ``error.txt``. The loop needs from them:
the held-out eval rows (manifest ids, looked up in the run's Parquet snapshot), the task's
closed answer set and pruned system prompt (report), and the trainer's own numbers (shown,
not trusted for the gate: the gate re-measures through vLLM, as the proxy serves).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from trainer.config import TrainConfig
from trainer.dataset import NotEnoughData, select_dataset
from trainer.feedback import gold_labels
from trainer.vote import VOTE_DIR, is_vote_dir

SNAPSHOT = "snapshot.parquet"
CONFIG = "config.json"
_DROP_KEYS = ("stream", "stream_options", "n", "user", "metadata", "store")


class ArtifactError(RuntimeError):
    """The run's outputs are missing or unusable."""


@dataclass(frozen=True)
class EvalRow:
    """One held-out request: the body the client sent and the teacher's answer."""

    id: str
    body: dict[str, Any]
    reference: str
    gold: bool = False
    """`reference` is a user's correction (or confirmation), not the teacher's answer."""
    teacher: str | None = None
    """The teacher's own answer on a gold row (None: it never answered, e.g. the student
    served and a user corrected that)."""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} when it is missing or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def find_key(data: dict[str, Any], key: str) -> tuple[bool, Any]:
    """`data[key]` at the top level or one level down (``report["dataset"]["closed_set"]``)."""
    if key in data:
        return True, data[key]
    for value in data.values():
        if isinstance(value, dict) and key in value:
            return True, value[key]
    return False, None


def error_text(run_dir: Path, limit: int = 2000) -> str | None:
    try:
        text = (run_dir / "error.txt").read_text(errors="replace").strip()
    except OSError:
        return None
    return text[-limit:] if text else None


class RunArtifacts:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.adapter_dir = run_dir / "adapter"
        self.vote_dir = run_dir / VOTE_DIR
        """The vote student's index (`trainer/vote.py`), written instead of an adapter."""
        self.snapshot = run_dir / SNAPSHOT
        self.report = read_json(run_dir / "report.json")
        self.manifest = read_json(run_dir / "manifest.json")

    @property
    def is_vote(self) -> bool:
        return is_vote_dir(self.vote_dir)

    @property
    def model_dir(self) -> Path:
        """What the run trained: the vote index or the LoRA adapter."""
        return self.vote_dir if self.is_vote else self.adapter_dir

    def check_adapter(self) -> None:
        if self.is_vote:
            return
        if not (self.adapter_dir / "adapter_config.json").is_file():
            raise ArtifactError(
                f"the run wrote no adapter ({self.adapter_dir} has no adapter_config.json)"
            )

    def config(self) -> TrainConfig:
        data = read_json(self.run_dir / CONFIG)
        return TrainConfig.from_dict(data) if data else TrainConfig()

    def closed_set(self) -> tuple[str, ...] | None:
        found, value = find_key(self.report, "closed_set")
        if isinstance(value, dict):  # {"labels": [...]} form
            value = value.get("labels")
        if found and isinstance(value, list) and value:
            return tuple(str(v) for v in value)
        return None

    def prompt_prefix(self) -> str | None:
        """The system prompt learned into the adapter, when the run pruned it."""
        _found, value = find_key(self.report, "prompt_prefix")
        if isinstance(value, str):
            return value or None
        if isinstance(value, dict) and value.get("pruned") and isinstance(value.get("text"), str):
            return str(value["text"])
        return None

    def trainer_summary(self) -> dict[str, Any]:
        """The trainer's own eval numbers per model (informational: the gate re-measures)."""
        evaluation = self.report.get("evaluation")
        if not isinstance(evaluation, dict):
            return {}
        keep = ("n", "agreement", "exact_match", "metric", "backend")
        return {
            role: {k: v for k, v in metrics.items() if k in keep}
            for role, metrics in evaluation.items()
            if isinstance(metrics, dict)
        }

    def eval_ids(self) -> list[str]:
        return self.split_ids("eval")

    def split_ids(self, split: str) -> list[str]:
        """Row ids of one manifest side (``eval``, ``calibration``, ``train``)."""
        entries = self.manifest.get(split)
        if entries is None:
            _found, entries = find_key(self.manifest, split)
        if not isinstance(entries, list):
            return []
        return [
            str(e["id"] if isinstance(e, dict) else e)
            for e in entries
            if isinstance(e, dict | str) and (not isinstance(e, dict) or "id" in e)
        ]

    def calibration_rows(self) -> list[EvalRow]:
        """The run's calibration set ([] for runs made before it existed, or without one)."""
        ids = self.split_ids("calibration")
        if not ids or not self.snapshot.is_file():
            return []
        return load_rows(self.snapshot, ids, self.config().eval_max_new_tokens)

    def eval_rows(self) -> list[EvalRow]:
        """The run's held-out rows (manifest ids; else the trainer's deterministic split)."""
        if not self.snapshot.is_file():
            raise ArtifactError(f"snapshot {self.snapshot} is missing")
        config = self.config()
        ids = self.eval_ids()
        if not ids:
            try:
                ids = [r.id for r in select_dataset(self.snapshot, config).eval]
            except NotEnoughData as exc:
                raise ArtifactError(f"no eval split: {exc}") from exc
        rows = load_rows(self.snapshot, ids, config.eval_max_new_tokens)
        if not rows:
            raise ArtifactError("the eval split is empty")
        return rows


def request_body(request: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """The logged client request as an eval request (one choice, capped length)."""
    body = {k: v for k, v in request.items() if k not in _DROP_KEYS}
    for key in ("max_tokens", "max_completion_tokens"):
        if body.get(key) is not None:
            body[key] = min(int(body[key]), max_tokens)
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body["max_tokens"] = max_tokens
    return body


def load_rows(snapshot: Path, ids: list[str], max_tokens: int) -> list[EvalRow]:
    with duckdb.connect() as conn:
        found = conn.execute(
            "SELECT id, CAST(request_json AS VARCHAR), teacher_text FROM read_parquet(?) "
            "WHERE list_contains(?, id)",
            [str(snapshot), ids],
        ).fetchall()
    by_id = {row[0]: row for row in found}
    gold = gold_labels(snapshot, ids)  # users' corrections beat the teacher's answer
    rows = []
    for row_id in ids:
        if row_id not in by_id:
            continue
        _, request_json, teacher_text = by_id[row_id]
        reference = gold.get(row_id, teacher_text)
        request = json.loads(request_json) if request_json else None
        if isinstance(request, dict) and reference:
            body = request_body(request, max_tokens)
            is_gold = row_id in gold
            rows.append(
                EvalRow(row_id, body, reference, is_gold, teacher_text if is_gold else None)
            )
    return rows


def load_regression_set(path: Path, max_tokens: int = 256) -> list[EvalRow]:
    """A JSONL of ``{"messages": [...], "expected": "..."}`` (other keys are request params)."""
    rows = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            messages, expected = item.pop("messages"), item.pop("expected")
        except (ValueError, KeyError, AttributeError, TypeError) as exc:
            raise ArtifactError(f"{path}:{i + 1}: expected {{messages, expected}}: {exc}") from exc
        body = request_body({**item, "messages": messages}, max_tokens)
        rows.append(EvalRow(f"regression-{i + 1}", body, str(expected)))
    return rows
