"""Feedback sent to the real app reaches the dataset the trainer selects (bad rows out,
corrections as gold labels), the dry run, and the evaluation report (gold accuracy)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from proxy.commands.train import train_command
from proxy.logstore.snapshot import export_snapshot
from proxy.loop.artifacts import EvalRow
from proxy.loop.evaluate import EvalItem, gold_accuracy
from proxy.settings import Settings
from tests.trainer.trainer_rows import build_row, write_snapshot
from trainer.backends import Generation
from trainer.config import TrainConfig
from trainer.dataset import TrainRow, is_eval, select_dataset, split_of
from trainer.evaluate import ServedAs, evaluate_model
from trainer.feedback import gold_lines, teacher_gold_accuracy
from trainer.report import summary_lines

TEACHER = "The capital is Paris."


def _ask(h: Any, i: int, route: str = "teacher") -> str:
    request_id = f"req-{i:03d}"
    h.client().chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": f"question number {i}?"}],
        extra_headers={"x-request-id": request_id, "x-distill-route": route},
    )
    return request_id


def _feedback(h: Any, **body: Any) -> None:
    resp = httpx.post(f"{h.url}/v1/feedback", json=body)
    assert resp.status_code == 200, resp.text


def _cfg() -> TrainConfig:
    return TrainConfig(min_rows=2, min_eval_rows=1, eval_fraction=0.3)


@pytest.fixture
def fed_back(make_proxy: Callable[..., Any], tmp_path: Path) -> tuple[Path, Path]:
    """12 teacher answers and one student answer, with feedback on five of them."""
    with make_proxy() as h:
        ids = [_ask(h, i) for i in range(12)]
        student_only = _ask(h, 99, route="student")
        _feedback(h, request_id=ids[0], rating="bad")
        _feedback(h, request_id=ids[1], rating="bad", correction="Lyon")
        _feedback(h, request_id=ids[2], rating="good")
        _feedback(h, request_id=ids[3], rating="good")
        _feedback(h, request_id=ids[3], rating="bad")  # the latest counts
        _feedback(h, request_id=student_only, correction="Marseille")
        h.flush()
        snapshot = export_snapshot(h.app.state.writer, tmp_path / "snap.parquet")
        db = h.settings.db
    return snapshot, db


def test_bad_rows_are_excluded_and_corrections_are_gold_labels(
    fed_back: tuple[Path, Path],
) -> None:
    selection = select_dataset(fed_back[0], _cfg())
    rows = {r.id: r for r in (*selection.train, *selection.eval)}
    assert "req-000" not in rows and "req-003" not in rows
    assert selection.counts["rated_bad"] == 2
    corrected = rows["req-001"]
    assert (corrected.completion, corrected.gold, corrected.teacher_answer) == (
        "Lyon", True, TEACHER,
    )  # fmt: skip
    assert corrected.teacher_logprobs is None  # they describe the teacher's answer
    assert rows["req-002"].gold and rows["req-002"].completion == TEACHER
    # No teacher answer at all, but a user said what the right one is.
    assert rows["req-099"].completion == "Marseille" and rows["req-099"].gold
    assert not rows["req-005"].gold and rows["req-005"].completion == TEACHER
    feedback = selection.summary()["feedback"]
    # Only req-001 corrected an answer of the teacher (req-099 had none to correct).
    assert feedback["gold_rows"] == 3 and feedback["corrected_rows"] == 1
    assert feedback["gold_train_rows"] + feedback["gold_eval_rows"] == 3
    # The teacher was right on one of the two gold rows it answered.
    assert feedback["teacher_gold_accuracy"]["n"] == 2
    assert feedback["teacher_gold_accuracy"]["accuracy"] == 0.5


def test_dry_run_counts_feedback(fed_back: tuple[Path, Path], tmp_path: Path) -> None:
    settings = Settings(db=fed_back[1], data_dir=tmp_path / "data", train_min_rows=2)
    lines: list[str] = []
    # 13 rows are below the default minimum of eval rows: exit 2, but the counts show.
    assert train_command(settings, None, True, echo=lines.append) == 2
    out = "\n".join(lines)
    assert "rated_bad 2" in out
    assert "feedback: 2 rows rated bad excluded; 3 gold rows (1 corrected the teacher" in out
    assert "teacher accuracy on gold rows: 0.500" in out


def _with_feedback(snapshot: Path, dest: Path, corrections: dict[str, str]) -> Path:
    """The snapshot as the log store would export it with these corrections."""
    cases = " ".join(f"WHEN id = '{k}' THEN '{v}'" for k, v in corrections.items())
    with duckdb.connect() as conn:
        conn.execute(
            f"COPY (SELECT *, CASE {cases} END AS feedback_correction, "
            f"CAST(NULL AS VARCHAR) AS feedback_rating FROM read_parquet('{snapshot}')) "
            f"TO '{dest}' (FORMAT parquet)"
        )
    return dest


def test_gold_rows_win_dedup_and_the_eval_cap(tmp_path: Path) -> None:
    same = "the same question?"
    rows = [build_row(i) for i in range(3, 40)]
    rows += [build_row(1, question=same, answer="old"), build_row(2, question=same, answer="new")]
    cfg = TrainConfig(min_rows=2, min_eval_rows=1, eval_fraction=0.5, eval_max_rows=1)
    uncapped = TrainConfig(min_rows=2, min_eval_rows=1, eval_fraction=0.5)
    plain_path = write_snapshot(tmp_path / "plain.parquet", rows)
    plain = select_dataset(plain_path, uncapped)
    by_id = {r.id: r for r in (*plain.train, *plain.eval)}
    assert "req-00002" in by_id and "req-00001" not in by_id  # the newest answer wins
    plain = select_dataset(plain_path, cfg)
    eval_ids = sorted(r["id"] for r in rows[:-2] if is_eval(r["prompt_hash"], 0.5))
    oldest_eval = eval_ids[0]
    assert [r.id for r in plain.eval] != [oldest_eval]  # without gold: the newest
    snapshot = _with_feedback(
        tmp_path / "plain.parquet",
        tmp_path / "gold.parquet",
        {"req-00001": "right", oldest_eval: "gold label"},
    )
    selection = select_dataset(snapshot, uncapped)
    by_id = {r.id: r for r in (*selection.train, *selection.eval)}
    assert by_id["req-00001"].completion == "right" and "req-00002" not in by_id
    selection = select_dataset(snapshot, cfg)
    assert [(r.id, r.completion) for r in selection.eval] == [(oldest_eval, "gold label")]


class _Backend:
    description = "fake"

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers

    def generate(self, conversations: Any, *args: Any) -> list[Generation]:
        return [Generation(a, []) for a in self.answers[: len(conversations)]]

    def close(self) -> None:
        pass


def _row(i: int, label: str, gold: bool, teacher: str | None) -> TrainRow:
    return TrainRow(
        id=f"r{i}", prompt_hash=f"h{i}", created_at=None,
        messages=({"role": "user", "content": f"q{i}"},), completion=label,
        teacher_logprobs=None, shadow=False, gold=gold, teacher_answer=teacher,
    )  # fmt: skip


def test_gold_accuracy_in_the_evaluation_and_the_report() -> None:
    rows = [
        _row(0, "card_arrival", True, "card_arrival"),
        _row(1, "lost_card", True, "card_arrival"),  # the teacher was wrong here
        _row(2, "exchange_rate", True, "exchange_rate"),
        _row(3, "top_up", False, None),
    ]
    student = _Backend(["card_arrival", "lost_card", "card_arrival", "top_up"])
    result = evaluate_model(student, rows, ServedAs(), 16, 0)
    gold = result["gold"]
    assert gold["accuracy"]["n"] == 3 and gold["accuracy"]["accuracy"] == pytest.approx(2 / 3)
    assert gold["teacher_accuracy"]["accuracy"] == pytest.approx(2 / 3)
    assert 0 < gold["accuracy"]["low"] < 2 / 3 < gold["accuracy"]["high"] < 1
    feedback = {
        "gold_rows": 3, "gold_train_rows": 0, "gold_eval_rows": 3, "corrected_rows": 1,
        "teacher_gold_accuracy": teacher_gold_accuracy(
            (r.teacher_answer, r.completion) for r in rows if r.gold
        ).to_dict(),
    }  # fmt: skip
    report = {
        "run_id": "r1",
        "dataset": {
            "train_rows": 0, "eval_rows": 4, "counts": {"total": 5, "selected": 4, "rated_bad": 1},
            "feedback": feedback,
        },
        "training": {
            "steps": 1, "train_seconds": 1.0, "seconds_per_100_rows": 1.0, "device": "cpu",
            "loss_first": 1.0, "loss_last": 0.5, "kd_active": False, "soft_labels": {},
        },
        "evaluation": {"eval_rows": 4, "candidate": result, "incumbent": None, "base": None},
    }  # fmt: skip
    text = "\n".join(summary_lines(report, Path("/tmp/run")))
    assert "feedback: 1 rows rated bad excluded; 3 gold rows (1 corrected the teacher" in text
    assert "candidate accuracy on gold eval rows: 0.667 [" in text
    assert "teacher on the same rows: 0.667" in text
    assert gold_lines({"rated_bad": 0}, {"gold_rows": 0}, None) == []


def test_report_shows_the_weakest_labels_of_a_closed_set_task() -> None:
    rows = [
        _row(0, "card_arrival", False, None),
        _row(1, "card_arrival", True, "card_arrival"),
        _row(2, "lost_card", False, None),
        _row(3, "lost_card", False, None),
        _row(4, "top_up", False, None),
    ]
    student = _Backend(
        ["card_arrival", "card_arrival", "card_arrival", "lost_card", "card_arrival"]
    )
    served = ServedAs(closed_set=["card_arrival", "lost_card", "top_up"])
    result = evaluate_model(student, rows, served, 16, 0)
    labels = {x["label"]: x for x in result["by_label"]["labels"]}
    assert labels["lost_card"]["agreement"] == 0.5 and labels["top_up"]["agreement"] == 0.0
    assert labels["card_arrival"]["gold_accuracy"] == 1.0
    assert result["by_label"]["never_answered"] == ["top_up"]
    assert [x["label"] for x in result["by_label"]["labels"]][0] == "top_up"  # weakest first
    assert evaluate_model(student, rows, ServedAs(), 16, 0)["by_label"] is None
    from trainer.breakdown import weak_label_lines

    lines = weak_label_lines({"candidate": result})
    assert lines[0] == "weakest labels (candidate): top_up 0.00 (n=1), lost_card 0.50 (n=2)"
    assert lines[1] == "labels the candidate never answered (1): top_up"


def test_gold_rows_go_to_the_held_out_side_first() -> None:
    hashes = [f"prompt-{i}" for i in range(4000)]
    cfg = TrainConfig()  # eval 10%, calibration 15%, gold held out 50%

    def sides(gold: bool, c: TrainConfig = cfg) -> list[str]:
        return [split_of(h, c, gold) for h in hashes]

    plain, gold = sides(False), sides(True)
    held = [s != "train" for s in gold]
    assert 0.46 < sum(held) / len(hashes) < 0.54
    # A prompt held out as a plain row stays on its side when it becomes gold; the extra
    # gold holdout keeps eval and calibration in their usual proportion.
    assert all(g == p for p, g in zip(plain, gold, strict=True) if p != "train")
    moved = [g for p, g in zip(plain, gold, strict=True) if p == "train" and g != "train"]
    assert 0.3 < moved.count("eval") / len(moved) < 0.5
    # At or below the plain held-out share nothing changes; at 1 no gold row trains.
    assert sides(True, TrainConfig(gold_holdout_fraction=0.2)) == plain
    assert "train" not in sides(True, TrainConfig(gold_holdout_fraction=1.0))
    with pytest.raises(ValueError, match="gold_holdout_fraction"):
        TrainConfig(gold_holdout_fraction=1.5)


def test_gate_gold_accuracy_skips_rows_the_teacher_never_answered() -> None:
    rows = [
        EvalRow("a", {}, "yes", gold=True, teacher="yes"),
        EvalRow("b", {}, "no", gold=True, teacher="yes"),
        EvalRow("c", {}, "no", gold=True, teacher=None),  # a corrected student answer
        EvalRow("d", {}, "yes"),  # the teacher's answer, not gold
    ]
    items = [EvalItem(i, "yes", -0.1, agree=i in ("a", "d")) for i in "abcd"]
    gold = gold_accuracy(rows, items)
    assert gold is not None and gold["rows"] == 3
    assert gold["student"]["n"] == 3 and gold["student"]["accuracy"] == 1 / 3
    assert gold["teacher"]["n"] == 2 and gold["teacher"]["accuracy"] == 0.5
    assert gold_accuracy(rows[3:], items) is None
