"""Dataset selection: which logged requests a run trains and evaluates on.

Reads a Parquet snapshot of the ``requests`` table (docs/architecture.md), never the live
DuckDB file. A row is a training example when the teacher answered it successfully:
non-empty ``teacher_text``, an accepted ``teacher_finish_reason``, ``status_code`` 200 and
no ``error``, not ``store: false``, not a refusal (configurable regexes), a text-only request
without tools. Shadow-sampled pairs count like any teacher answer. Rows are deduplicated by
``prompt_hash`` keeping the newest, then split by a pure function of the prompt hash into
eval (the promotion gate), calibration (the proxy's serving threshold) and train, so a prompt
keeps its side across all runs and the held-out sides grow with the traffic; each side is
capped to its newest rows (``max_rows`` for train).

Every rejected row is counted under the first filter that rejected it (``--dry-run`` shows
these counts). No torch here: `distill train --dry-run` and the proxy import this module.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from trainer.config import TrainConfig
from trainer.feedback import feedback_source, gold_summary
from trainer.rows import TrainRow
from trainer.task import PromptPrefix, detect_closed_set, detect_prompt_prefix, strip_prefix
from trainer.validators import apply_answer_filters

# Reasons a row is rejected, in the order they are checked (the first match counts).
SQL_FILTERS = (
    "store_false",
    "before_since",
    "out_of_scope",
    "rated_bad",
    "no_teacher_answer",
    "error",
    "finish_reason",
)
PY_FILTERS = ("unsupported_request", "refusal", "duplicate", "over_max_rows")
SPLIT_BUCKETS = 1000
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class NotEnoughData(ValueError):
    """Too few usable rows for a meaningful run; the message says how many and why.
    ``selection`` holds the counts and splits that were found (for ``--dry-run``)."""

    def __init__(self, message: str, selection: DatasetSelection | None = None) -> None:
        super().__init__(message)
        self.selection = selection


@dataclass
class DatasetSelection:
    """The outcome of selection: splits, per-filter counts, manifest, task shape."""

    train: list[TrainRow]
    eval: list[TrainRow]
    counts: dict[str, int]
    calibration: list[TrainRow] = field(default_factory=list)
    """Held out for good like eval; the proxy scores each promoted version on it."""
    prompt_prefix: PromptPrefix | None = None
    closed_set: list[str] | None = None
    eval_held_back: int = 0
    notes: list[str] = field(default_factory=list)

    def student_messages(self, row: TrainRow) -> list[dict[str, Any]]:
        """The conversation the student is trained on and served with (pruned if so)."""
        return strip_prefix(row.messages, self.prompt_prefix)

    @property
    def soft_label_rows(self) -> int:
        return sum(1 for r in self.train if r.teacher_logprobs)

    def manifest(self) -> dict[str, list[dict[str, str]]]:
        return {
            split: [{"id": r.id, "prompt_hash": r.prompt_hash} for r in rows]
            for split, rows in (
                ("train", self.train),
                ("eval", self.eval),
                ("calibration", self.calibration),
            )
        }

    def summary(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "train_rows": len(self.train),
            "eval_rows": len(self.eval),
            "calibration_rows": len(self.calibration),
            "eval_held_back": self.eval_held_back,
            "soft_label_rows": self.soft_label_rows,
            "prompt_prefix": self.prompt_prefix.to_dict() if self.prompt_prefix else None,
            "closed_set": self.closed_set,
            "notes": list(self.notes),
            "feedback": gold_summary(self.train, self.eval, self.calibration),
        }


def parse_since(value: str | datetime | None, now: datetime | None = None) -> datetime | None:
    """``--since``: an ISO date/datetime (UTC when naive) or a duration ago (``7d``, ``12h``)."""
    if value is None or isinstance(value, datetime):
        return _naive_utc(value) if value else None
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        now = now or datetime.now(UTC)
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return _naive_utc(now - delta)
    try:
        return _naive_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(
            f"--since {value!r}: expected an ISO date/datetime or a duration like 7d, 12h, 30m"
        ) from None


def _naive_utc(value: datetime) -> datetime:
    # The log stores naive UTC timestamps.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def split_bucket(prompt_hash: str) -> int:
    """Stable bucket in [0, 1000) for a prompt: depends on nothing but the hash."""
    return int(hashlib.sha256(prompt_hash.encode("utf-8")).hexdigest(), 16) % SPLIT_BUCKETS


def is_eval(prompt_hash: str, eval_fraction: float) -> bool:
    return split_bucket(prompt_hash) < round(eval_fraction * SPLIT_BUCKETS)


def split_of(prompt_hash: str, cfg: TrainConfig, gold: bool = False) -> str:
    """``eval``, ``calibration`` or ``train``: a pure function of the prompt hash (and whether
    the row is gold), so a prompt keeps its side across runs and the held-out sides grow with
    the traffic.

    Gold rows go to the held-out side first: the train buckets right after the held-out ones,
    up to `gold_holdout_fraction`, hold gold rows out too, shared between eval and calibration
    in their usual proportion. A row that becomes gold can thus only move from train to the
    held-out side, never back."""
    bucket = split_bucket(prompt_hash)
    eval_end = round(cfg.eval_fraction * SPLIT_BUCKETS)
    held_end = eval_end + round(cfg.calibration_fraction * SPLIT_BUCKETS)
    gold_end = round(cfg.gold_holdout_fraction * SPLIT_BUCKETS)
    if gold and held_end <= bucket < gold_end:
        bucket = (bucket - held_end) * held_end // (gold_end - held_end)
    if bucket < eval_end:
        return "eval"
    if bucket < held_end:
        return "calibration"
    return "train"


def select_dataset(
    snapshot: Path, cfg: TrainConfig, since: datetime | None = None
) -> DatasetSelection:
    """Applies every filter, dedups, splits. Raises `NotEnoughData` below the minimums."""
    counts: Counter[str] = Counter({name: 0 for name in SQL_FILTERS + PY_FILTERS})
    raw_rows = _query_candidates(snapshot, cfg, since, counts)
    rows = _python_filters(raw_rows, cfg, counts)
    rows = apply_answer_filters(rows, cfg, counts)
    selection = _split(rows, cfg, counts)
    _check_enough(selection, cfg)
    return selection


def _query_candidates(
    snapshot: Path, cfg: TrainConfig, since: datetime | None, counts: Counter[str]
) -> list[tuple[Any, ...]]:
    if not snapshot.is_file():
        raise FileNotFoundError(f"snapshot {snapshot} does not exist")
    # Only a per-task run names the column: snapshots from before tasks have none.
    task_clause = " OR (task IS DISTINCT FROM $task)" if cfg.task is not None else ""
    reject = f"""
        CASE
          WHEN store IS NOT DISTINCT FROM false THEN 'store_false'
          WHEN $since IS NOT NULL AND (created_at IS NULL OR created_at < $since)
            THEN 'before_since'
          WHEN ($model IS NOT NULL AND requested_model IS DISTINCT FROM $model)
            OR ($tag IS NOT NULL AND tag IS DISTINCT FROM $tag){task_clause}
            THEN 'out_of_scope'
          WHEN rated_bad THEN 'rated_bad'
          WHEN teacher_text IS NULL OR trim(teacher_text) = '' THEN 'no_teacher_answer'
          WHEN coalesce(status_code, 200) <> 200 OR error IS NOT NULL THEN 'error'
          WHEN teacher_finish_reason IS NULL
            OR NOT list_contains($reasons, teacher_finish_reason) THEN 'finish_reason'
        END"""
    params = {
        "path": str(snapshot),
        "since": since,
        "model": cfg.scope_model,
        "tag": cfg.scope_tag,
        "reasons": list(cfg.finish_reasons),
    }
    if cfg.task is not None:
        params["task"] = cfg.task
    source = feedback_source(snapshot)
    judged = f"WITH judged AS (SELECT *, {reject} AS reject FROM {source}) "
    with duckdb.connect() as conn:
        for reason, n in conn.execute(
            judged + "SELECT coalesce(reject, 'passed'), count(*) FROM judged GROUP BY ALL",
            params,
        ).fetchall():
            counts[reason] += n
        counts["total"] = sum(counts[r] for r in (*SQL_FILTERS, "passed"))
        del counts["passed"]
        return conn.execute(
            judged + "SELECT id, prompt_hash, created_at, CAST(request_json AS VARCHAR), "
            "teacher_text, CAST(teacher_logprobs_json AS VARCHAR), coalesce(shadow, false), "
            "gold, teacher_answer FROM judged WHERE reject IS NULL "
            "ORDER BY gold DESC, created_at DESC NULLS LAST, id DESC",
            params,
        ).fetchall()


def _python_filters(
    raw_rows: list[tuple[Any, ...]], cfg: TrainConfig, counts: Counter[str]
) -> list[TrainRow]:
    refusals = [re.compile(p) for p in cfg.refusal_patterns]
    seen: set[str] = set()
    rows: list[TrainRow] = []
    for row in raw_rows:
        row_id, prompt_hash, created_at, request_json, text, logprobs_json, shadow = row[:7]
        gold, teacher_answer = row[7:9] if len(row) > 7 else (False, None)
        messages = parse_messages(request_json)
        if messages is None:
            counts["unsupported_request"] += 1
            continue
        if not gold and any(p.search(text) for p in refusals):
            counts["refusal"] += 1
            continue
        key = prompt_hash or _fallback_hash(messages)
        if key in seen:
            counts["duplicate"] += 1
            continue
        seen.add(key)
        rows.append(
            TrainRow(
                id=str(row_id),
                prompt_hash=key,
                created_at=created_at,
                messages=tuple(messages),
                completion=text,
                teacher_logprobs=parse_logprobs(logprobs_json),
                shadow=bool(shadow),
                gold=bool(gold),
                teacher_answer=teacher_answer if gold else None,
            )
        )
    return rows


def _split(rows: list[TrainRow], cfg: TrainConfig, counts: Counter[str]) -> DatasetSelection:
    prefix = detect_prompt_prefix(
        [r.messages for r in rows], cfg.prune_min_share, cfg.prune_min_chars, cfg.prune_prompt
    )
    closed_set = detect_closed_set([r.completion for r in rows], cfg.closed_set_max)
    sides: dict[str, list[TrainRow]] = {"eval": [], "calibration": [], "train": []}
    for row in rows:  # newest first: each cap keeps the newest
        sides[split_of(row.prompt_hash, cfg, row.gold)].append(row)
    train, eval_rows, calibration = sides["train"], sides["eval"], sides["calibration"]
    if len(train) > cfg.max_rows:
        counts["over_max_rows"] = len(train) - cfg.max_rows
        train = train[: cfg.max_rows]
    # Held-back eval rows are NOT moved to train: the eval split is held out for good.
    held_back = max(0, len(eval_rows) - cfg.eval_max_rows)
    eval_rows = eval_rows[: cfg.eval_max_rows]
    calibration = calibration[: cfg.calibration_max_rows]
    counts["selected"] = len(train) + len(eval_rows) + len(calibration)
    notes = []
    if prefix is not None and not prefix.pruned:
        notes.append(
            f"a {len(prefix.text)}-char system prompt is shared by {prefix.share:.0%} of rows; "
            "train_prune_prompt would learn it into the adapter"
        )
    return DatasetSelection(
        train=train,
        eval=eval_rows,
        calibration=calibration,
        counts=dict(counts),
        prompt_prefix=prefix,
        closed_set=closed_set,
        eval_held_back=held_back,
        notes=notes,
    )


def _check_enough(selection: DatasetSelection, cfg: TrainConfig) -> None:
    selected = selection.counts["selected"]
    rejected = {k: v for k, v in selection.counts.items() if v and k not in ("total", "selected")}
    why = f"(of {selection.counts['total']} logged rows; rejected: {rejected or 'none'})"
    if selected < cfg.min_rows:
        raise NotEnoughData(
            f"only {selected} usable teacher-answered rows, need at least {cfg.min_rows} {why}",
            selection,
        )
    if len(selection.eval) < cfg.min_eval_rows or not selection.train:
        raise NotEnoughData(
            f"split of {selected} rows gives {len(selection.train)} train and "
            f"{len(selection.eval)} eval rows; need >= 1 train and >= {cfg.min_eval_rows} "
            f"eval rows (eval_fraction={cfg.eval_fraction}) {why}",
            selection,
        )


def parse_messages(request_json: str | None) -> list[dict[str, Any]] | None:
    """Text-only chat messages of a logged request, or None when the request is not
    something the student can be trained on (tools, images, malformed)."""
    try:
        request = json.loads(request_json) if request_json else None
    except json.JSONDecodeError:
        return None
    if not isinstance(request, dict) or request.get("tools") or request.get("functions"):
        return None
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    out: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
        ):
            return None
        content = _text_content(message.get("content"))
        if content is None:
            return None
        out.append({"role": message["role"], "content": content})
    return out


def _text_content(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        ]
        if len(parts) == len(content):
            return "\n".join(parts)  # how vLLM joins text parts
    return None


def parse_logprobs(logprobs_json: str | None) -> tuple[dict[str, Any], ...] | None:
    """The teacher's ``logprobs.content`` list if it is well formed, else None."""
    try:
        content = json.loads(logprobs_json) if logprobs_json else None
    except json.JSONDecodeError:
        return None
    if not isinstance(content, list) or not content:
        return None
    for entry in content:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("token"), str)
            and isinstance(entry.get("logprob"), int | float)
        ):
            return None
    return tuple(content)


def _fallback_hash(messages: list[dict[str, Any]]) -> str:
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
