"""Where the student is weak: the request log per label (closed-set tasks), per tag or per
task (the agreement and gold columns of `GET /admin/tasks`).

For each group: requests, the share the student served, its agreement with the teacher
(on rows that have both answers: fallbacks and shadow samples, so biased towards the
prompts it was unsure of), and its and the teacher's accuracy on gold rows (users'
feedback: a correction, or a ``good`` rating of the served answer, as in training). Per
label, the labels the student never served are listed: with a closed label set (the
active student version's) also those never seen at all.

A row's label is its best known right answer: the gold label, else the teacher's answer,
else the student's. Only short plain answers count as labels (those `trainer.agreement`
scores by exact match); longer ones and JSON answers (scored field by field) are grouped as
``(free text)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import orjson

from proxy.logstore import feedback as feedback_store
from proxy.logstore.rows import utc_naive
from trainer.agreement import agreement, metric_for, normalize_answer
from trainer.feedback import accuracy

BY = ("label", "tag", "task")
_GROUP_COLUMN = {"tag": "tag", "task": "task"}  # the row's own column, else the label
MAX_ROWS = 50_000  # the newest rows of the window: enough to rank labels, bounded memory
NO_TAG = "(none)"
FREE_TEXT = "(free text)"
OTHER = "(outside the label set)"


@dataclass
class _Group:
    name: str
    requests: int = 0
    student: int = 0
    agreement: list[float] = field(default_factory=list)
    gold_student: list[float] = field(default_factory=list)
    gold_teacher: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requests": self.requests,
            "student_served": self.student,
            "student_share": self.student / self.requests if self.requests else None,
            "agreement": _mean(self.agreement),
            "agreement_n": len(self.agreement),
            "gold_accuracy": _mean(self.gold_student),
            "gold_n": len(self.gold_student),
            "teacher_gold_accuracy": _mean(self.gold_teacher),
            "teacher_gold_n": len(self.gold_teacher),
        }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _closed_set(conn: duckdb.DuckDBPyConnection) -> list[str] | None:
    rows = conn.execute(
        "SELECT CAST(closed_set_json AS VARCHAR) FROM student_versions WHERE active LIMIT 1"
    ).fetchall()
    value = orjson.loads(rows[0][0]) if rows and rows[0][0] else None
    return [str(v) for v in value] if isinstance(value, list) and value else None


def _rows(
    conn: duckdb.DuckDBPyConnection, since: datetime | None, group: str = "tag"
) -> list[tuple[Any, ...]]:
    feedback = feedback_store.has_table(conn)
    latest = feedback_store.latest_sql("request_id, rating, correction") if feedback else None
    select = f"r.route, r.{group}, r.student_text, r.teacher_text, " + (
        "f.rating, f.correction" if latest else "NULL, NULL"
    )
    join = f" LEFT JOIN ({latest}) f ON f.request_id = r.id" if latest else ""
    where, params = " WHERE r.route IN ('student', 'teacher')", []
    if since is not None:
        where += " AND r.created_at >= ?"
        params.append(utc_naive(since))
    sql = (
        f"SELECT {select} FROM requests r{join}{where} ORDER BY r.created_at DESC LIMIT {MAX_ROWS}"
    )
    return conn.execute(sql, params).fetchall()


def _gold(route: str, student: str | None, teacher: str | None, rating: Any, fix: Any) -> Any:
    if fix is not None and str(fix).strip():
        return str(fix)
    if rating == "good":
        return student if route == "student" else teacher
    return None


def _label(reference: str | None, labels: dict[str, str] | None) -> str:
    text = (reference or "").strip()
    if labels is not None:
        return labels.get(normalize_answer(text), OTHER)
    if not text or metric_for(text) != "exact_match":  # `{"city": "Paris"}` is no label
        return FREE_TEXT
    return text


def breakdown(
    conn: duckdb.DuckDBPyConnection, by: str, since: datetime | None = None
) -> dict[str, Any]:
    """The per-group table (most requests first) and the labels the student never serves."""
    if by not in BY:
        raise ValueError(f"--by must be one of {', '.join(BY)}, not {by!r}")
    closed = _closed_set(conn) if by == "label" else None
    labels = {normalize_answer(c): c for c in closed} if closed else None
    groups: dict[str, _Group] = {}
    column = _GROUP_COLUMN.get(by)
    for route, group, student, teacher, rating, fix in _rows(conn, since, column or "tag"):
        gold = _gold(route, student, teacher, rating, fix)
        name = (group or NO_TAG) if column else _label(gold or teacher or student, labels)
        group = groups.setdefault(name, _Group(name))
        group.requests += 1
        group.student += route == "student"
        if student is not None and teacher is not None:
            group.agreement.append(agreement(student, teacher)[0])
        if gold is not None and student is not None:
            group.gold_student.append(agreement(student, gold)[0])
        if gold is not None and teacher is not None:
            group.gold_teacher.append(agreement(teacher, gold)[0])
    ordered = sorted(groups.values(), key=lambda g: (-g.requests, g.name))
    never = [g.name for g in ordered if g.student == 0 and g.name not in (FREE_TEXT, OTHER)]
    if closed and by == "label":
        never += [c for c in closed if c not in groups]
    return {
        "by": by,
        "since": since.isoformat() if since else None,
        "rows": sum(g.requests for g in ordered),
        "closed_set": closed,
        "groups": [g.to_dict() for g in ordered],
        "never_served": never if by == "label" else [],
    }


def feedback_overview(conn: duckdb.DuckDBPyConnection, since: datetime | None) -> dict[str, Any]:
    """For `distill stats`: gold rows in the window and the student's and the teacher's
    accuracy on them, with 95 % Wilson intervals: how often each is actually right."""
    student: list[float] = []
    teacher: list[float] = []
    gold_rows = rated_bad = 0
    for route, _tag, s_text, t_text, rating, fix in _rows(conn, since):
        rated_bad += rating == "bad" and fix is None
        gold = _gold(route, s_text, t_text, rating, fix)
        if gold is None:
            continue
        gold_rows += 1
        if s_text is not None:
            student.append(agreement(s_text, gold)[0])
        if t_text is not None:
            teacher.append(agreement(t_text, gold)[0])
    return {
        "gold_rows": gold_rows,
        "rated_bad": rated_bad,
        "student_gold_accuracy": accuracy(student).to_dict(),
        "teacher_gold_accuracy": accuracy(teacher).to_dict(),
    }


def _interval(acc: dict[str, Any]) -> str:
    if acc.get("accuracy") is None:
        return "n/a"
    return f"{acc['accuracy']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] (n={acc['n']})"


def feedback_lines(report: dict[str, Any]) -> list[str]:
    """`distill stats` lines about users' feedback (none without any)."""
    fb = report.get("feedback") or {}
    if not (fb.get("gold_rows") or fb.get("rated_bad")):
        return []
    return [
        f"feedback: {fb['gold_rows']} gold rows, {fb['rated_bad']} rated bad",
        f"accuracy on gold rows: student {_interval(fb['student_gold_accuracy'])}, "
        f"teacher {_interval(fb['teacher_gold_accuracy'])}",
    ]


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def acc(value: float | None, n: int) -> str:
    return "n/a" if value is None else f"{value:.3f} (n={n})"


def print_breakdown(console: Any, data: dict[str, Any], origin: str, top: int = 40) -> None:
    """The table of `distill stats --by label|tag` (weakest first among the busiest)."""
    from rich.table import Table

    console.print(f"from {origin}", soft_wrap=True, markup=False, highlight=False)
    table = Table(title=f"where the student is weak, by {data['by']} ({data['rows']} requests)")
    for column in ("name", "requests", "student share", "agreement", "gold acc.", "teacher gold"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for g in data["groups"][:top]:
        table.add_row(
            str(g["name"]),
            str(g["requests"]),
            pct(g["student_share"]),
            acc(g["agreement"], g["agreement_n"]),
            acc(g["gold_accuracy"], g["gold_n"]),
            acc(g["teacher_gold_accuracy"], g["teacher_gold_n"]),
        )
    console.print(table)
    hidden = len(data["groups"]) - top
    if hidden > 0:
        console.print(f"(+{hidden} smaller groups; --json shows all)")
    never = data.get("never_served") or []
    if never:
        shown = ", ".join(never[:20]) + (", ..." if len(never) > 20 else "")
        console.print(
            f"never served by the student ({len(never)}): {shown}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
