"""Teacher-error filters beyond refusals: answers outside the task's label set, and a
user's validator hook. Truncated answers are already out: only ``train_finish_reasons``
(default ``stop``) count as complete, so ``length`` and cut-off streams never train.

- ``outside_label_set``: for a closed-set task, a teacher answer that is not one of its
  labels. The labels are ``label_set`` when configured; otherwise they are inferred when the
  task is clearly closed: at least ``label_set_min_share`` of the rows carry a short answer
  seen at least twice, in at most ``closed_set_max`` distinct labels. Then the rest (a
  rambling answer, a label invented once) is rejected, and the closed-set detection of the
  split sees a clean set.
- ``validator``: ``answer_validator`` names a Python callable, ``module:function`` (or an
  entry point in the ``distill.validators`` group), called as ``fn(messages, answer)``; it
  returns True/None to keep the row, False or a reason string to reject it. A validator
  that raises rejects that row only (``validator_error``, the first error logged by type and
  row id), so one odd answer cannot fail a run; a validator that always raises leaves no
  rows, and the counts say why.

Gold rows (users' corrections) are never rejected here: a user's label is the ground truth.
"""

from __future__ import annotations

import importlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from trainer.agreement import normalize_answer
from trainer.config import TrainConfig
from trainer.rows import TrainRow
from trainer.task import CLOSED_SET_MAX_CHARS, CLOSED_SET_MAX_WORDS

Validator = Callable[[list[dict[str, Any]], str], "bool | str | None"]
ENTRY_POINT_GROUP = "distill.validators"
FILTERS = ("outside_label_set", "validator", "validator_error")
log = logging.getLogger("trainer.validators")


def load_validator(spec: str) -> Validator:
    """``module:function``, ``module.function``, or the name of an entry point."""
    found = entry_points(group=ENTRY_POINT_GROUP, name=spec)
    if found:
        return found[0].load()  # type: ignore[no-any-return]
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"answer_validator {spec!r}: expected module:function")
    fn = getattr(importlib.import_module(module_name), attr, None)
    if not callable(fn):
        raise ValueError(f"answer_validator {spec!r}: {attr!r} is not a callable")
    return fn  # type: ignore[no-any-return]


def _short(answer: str) -> bool:
    text = answer.strip()
    return (
        bool(text)
        and len(text) <= CLOSED_SET_MAX_CHARS
        and len(text.split()) <= (CLOSED_SET_MAX_WORDS)
    )


def infer_label_set(answers: Sequence[str], cfg: TrainConfig) -> set[str] | None:
    """Normalised labels of a clearly closed task, else None."""
    if not answers or cfg.closed_set_max <= 0:
        return None
    counts = Counter(normalize_answer(a) for a in answers if _short(a))
    labels = {label for label, n in counts.items() if n >= 2}
    covered = sum(counts[label] for label in labels)
    if not labels or len(labels) > cfg.closed_set_max:
        return None
    return labels if covered / len(answers) >= cfg.label_set_min_share else None


def label_set(rows: Sequence[TrainRow], cfg: TrainConfig) -> set[str] | None:
    if cfg.label_set:
        return {normalize_answer(label) for label in cfg.label_set}
    return infer_label_set([r.completion for r in rows if not r.gold], cfg)


def apply_answer_filters(
    rows: list[TrainRow], cfg: TrainConfig, counts: Counter[str]
) -> list[TrainRow]:
    """The rows that pass; rejections are counted under `FILTERS`."""
    for name in FILTERS:
        counts.setdefault(name, 0)
    labels = label_set(rows, cfg)
    validator = load_validator(cfg.answer_validator) if cfg.answer_validator else None
    kept: list[TrainRow] = []
    for row in rows:
        if not row.gold and labels is not None and normalize_answer(row.completion) not in labels:
            counts["outside_label_set"] += 1
            continue
        if not row.gold and validator is not None:
            rejected_by = _judge(validator, row, counts)
            if rejected_by is not None:
                counts[rejected_by] += 1
                continue
        kept.append(row)
    return kept


def _judge(validator: Validator, row: TrainRow, counts: Counter[str]) -> str | None:
    """None to keep the row, else the filter that rejects it."""
    try:
        verdict = validator([dict(m) for m in row.messages], row.completion)
    except Exception as exc:  # noqa: BLE001 - a user's hook may raise anything
        if not counts["validator_error"]:
            # The type only: the message may quote the request or the answer.
            log.warning("answer validator raised %s on row %s", type(exc).__name__, row.id)
        return "validator_error"
    return "validator" if verdict is False or isinstance(verdict, str) else None
