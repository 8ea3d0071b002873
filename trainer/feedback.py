"""Users' feedback in dataset selection and evaluation (issue 15).

A snapshot row carries the latest feedback on its request (``feedback_*`` columns, see
`proxy.logstore.feedback.snapshot_select`). Selection reads the snapshot through
`feedback_source`, which applies it before any filter:

- a **gold label** replaces the teacher's answer: the correction if there is one, else,
  for a request rated ``good``, the answer the client was served (the student's when the
  student served it). Gold rows need no teacher answer, are never refusal-filtered, win
  the dedup of their prompt, and are first in line for the eval split's cap. The teacher's
  soft labels are dropped when the gold label differs from its answer (they describe a
  different completion);
- a row rated ``bad`` without a correction is rejected (``rated_bad``).

The teacher's own answer stays in ``teacher_answer`` so the report can say how often the
teacher was right on gold rows: measured on every gold row with a teacher answer (train and
eval: the teacher's answers do not depend on the split), next to the student's accuracy on
the gold rows of the eval split. No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import duckdb

from trainer.agreement import agreement

FEEDBACK_COLUMNS = ("feedback_rating", "feedback_correction")
INTERVAL_LEVEL = 0.95

_LABEL = """CASE
      WHEN feedback_correction IS NOT NULL AND trim(feedback_correction) <> ''
        THEN feedback_correction
      WHEN feedback_rating = 'good' AND route = 'student' THEN student_text
      WHEN feedback_rating = 'good' THEN teacher_text
    END"""

_APPLIED = f"""(SELECT * REPLACE (
      coalesce(gold_label, teacher_text) AS teacher_text,
      CASE WHEN gold_label IS NOT NULL THEN 'stop' ELSE teacher_finish_reason END
        AS teacher_finish_reason,
      CASE WHEN gold_label IS DISTINCT FROM teacher_text AND gold_label IS NOT NULL THEN NULL
        ELSE teacher_logprobs_json END AS teacher_logprobs_json),
    teacher_text AS teacher_answer,
    gold_label IS NOT NULL AS gold,
    feedback_rating = 'bad' AND gold_label IS NULL AS rated_bad
  FROM (SELECT *, {_LABEL} AS gold_label FROM read_parquet($path)))"""

_WITHOUT = """(SELECT *, CAST(NULL AS VARCHAR) AS teacher_answer, false AS gold,
    false AS rated_bad FROM read_parquet($path))"""


def has_feedback(snapshot: Path) -> bool:
    """Snapshots from before feedback existed have no ``feedback_*`` columns."""
    with duckdb.connect() as conn:
        rows = conn.execute("SELECT name FROM parquet_schema(?)", [str(snapshot)]).fetchall()
    names = {r[0] for r in rows}
    return all(c in names for c in FEEDBACK_COLUMNS)


def feedback_source(snapshot: Path) -> str:
    """The relation selection reads instead of ``read_parquet($path)``: the same columns
    with the feedback applied, plus ``teacher_answer``, ``gold`` and ``rated_bad``."""
    return _APPLIED if has_feedback(snapshot) else _WITHOUT


def gold_labels(snapshot: Path, ids: Sequence[str]) -> dict[str, str]:
    """The gold label of each of these rows that has one: what the promotion gate and the
    calibration compare answers with, instead of the teacher's answer."""
    if not ids or not has_feedback(snapshot):
        return {}
    with duckdb.connect() as conn:
        rows = conn.execute(
            f"SELECT id, teacher_text FROM {_APPLIED} WHERE gold AND list_contains($ids, id)",
            {"path": str(snapshot), "ids": list(ids)},
        ).fetchall()
    return {str(i): str(label) for i, label in rows}


@dataclass(frozen=True)
class Accuracy:
    n: int
    accuracy: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": self.accuracy, "low": self.low, "high": self.high}


def wilson(p: float, n: int, level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """Wilson score interval (for mean agreement in [0, 1], an approximation)."""
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy(scores: Iterable[float]) -> Accuracy:
    values = list(scores)
    if not values:
        return Accuracy(0, None, None, None)
    p = sum(values) / len(values)
    low, high = wilson(p, len(values))
    return Accuracy(len(values), p, low, high)


def teacher_gold_accuracy(pairs: Iterable[tuple[str | None, str]]) -> Accuracy:
    """(teacher's answer, gold label) pairs: how often the teacher was right."""
    return accuracy(agreement(t, gold)[0] for t, gold in pairs if t is not None)


def gold_summary(
    rows_train: Sequence[Any], rows_eval: Sequence[Any], rows_calibration: Sequence[Any] = ()
) -> dict[str, Any]:
    """Gold rows per split and the teacher's measured accuracy on all of them."""
    gold = [r for r in (*rows_train, *rows_eval, *rows_calibration) if r.gold]
    return {
        "gold_rows": len(gold),
        "gold_train_rows": sum(1 for r in rows_train if r.gold),
        "gold_eval_rows": sum(1 for r in rows_eval if r.gold),
        "gold_calibration_rows": sum(1 for r in rows_calibration if r.gold),
        "corrected_rows": sum(
            1 for r in gold if r.teacher_answer is not None and r.teacher_answer != r.completion
        ),
        "teacher_gold_accuracy": teacher_gold_accuracy(
            (r.teacher_answer, r.completion) for r in gold
        ).to_dict(),
    }


def eval_gold_summary(rows: Sequence[Any], scores: Sequence[float]) -> dict[str, Any]:
    """A model's accuracy on the gold rows of the eval split, with the teacher's on the
    same rows (``scores`` are the model's agreements with each row's label, in order)."""
    gold = [(r, s) for r, s in zip(rows, scores, strict=True) if r.gold]
    return {
        "accuracy": accuracy(s for _, s in gold).to_dict(),
        "teacher_accuracy": teacher_gold_accuracy(
            (r.teacher_answer, r.completion) for r, _ in gold
        ).to_dict(),
    }


def _acc(acc: dict[str, Any] | None) -> str:
    if not acc or acc.get("accuracy") is None:
        return "n/a"
    return f"{acc['accuracy']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] (n={acc['n']})"


def gold_lines(
    counts: dict[str, int], feedback: dict[str, Any] | None, evaluation: dict[str, Any] | None
) -> list[str]:
    """Human lines for the dry run and the run summary; none without any feedback."""
    if not feedback or not (feedback.get("gold_rows") or counts.get("rated_bad")):
        return []
    lines = [
        f"feedback: {counts.get('rated_bad', 0)} rows rated bad excluded; "
        f"{feedback['gold_rows']} gold rows ({feedback['corrected_rows']} corrected the "
        f"teacher; {feedback['gold_train_rows']} train / {feedback['gold_eval_rows']} eval / "
        f"{feedback.get('gold_calibration_rows', 0)} calibration)",
        f"teacher accuracy on gold rows: {_acc(feedback.get('teacher_gold_accuracy'))}",
    ]
    for role in ("candidate", "incumbent", "base"):
        result = (evaluation or {}).get(role)
        gold = result.get("gold") if isinstance(result, dict) else None
        if gold and gold["accuracy"]["n"]:
            lines.append(
                f"{role} accuracy on gold eval rows: {_acc(gold['accuracy'])}; "
                f"teacher on the same rows: {_acc(gold['teacher_accuracy'])}"
            )
    return lines
