"""Teacher-error filters beyond refusals (label set, validator hook) and gold labels as
the promotion gate's reference."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from proxy.loop.artifacts import load_rows
from tests.trainer.trainer_rows import build_row, write_snapshot
from trainer.config import TrainConfig
from trainer.dataset import select_dataset
from trainer.validators import load_validator

LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]


def reject_mentions_refund(messages: list[dict[str, Any]], answer: str) -> bool | str:
    """A validator hook as a user would write one."""
    assert messages and messages[-1]["role"] == "user"
    return "refund" if "refund" in answer else True


def _cfg(**kw: Any) -> TrainConfig:
    return TrainConfig(min_rows=2, min_eval_rows=1, eval_fraction=0.3, **kw)


def _with_correction(snapshot: Path, dest: Path, row_id: str, label: str) -> Path:
    with duckdb.connect() as conn:
        conn.execute(
            f"COPY (SELECT *, CASE WHEN id = '{row_id}' THEN '{label}' END "
            f"AS feedback_correction, CAST(NULL AS VARCHAR) AS feedback_rating "
            f"FROM read_parquet('{snapshot}')) TO '{dest}' (FORMAT parquet)"
        )
    return dest


def _ids(selection: Any) -> set[str]:
    return {r.id for r in (*selection.train, *selection.eval, *selection.calibration)}


def test_answers_outside_an_inferred_label_set_are_dropped(tmp_path: Path) -> None:
    rows = [build_row(i, answer=LABELS[i % 3]) for i in range(60)]
    rows.append(build_row(100, answer="I think this is about a card that has not arrived yet"))
    rows.append(build_row(101, answer="card_delivery_estimate"))  # a label invented once
    selection = select_dataset(write_snapshot(tmp_path / "s.parquet", rows), _cfg())
    assert selection.counts["outside_label_set"] == 2
    assert not {"req-00100", "req-00101"} & _ids(selection)
    # With the outliers gone the task is served as a closed set.
    assert selection.closed_set == sorted(LABELS)


def test_open_ended_answers_are_not_label_filtered(tmp_path: Path) -> None:
    rows = [build_row(i, answer=f"a free text answer about topic {i}") for i in range(30)]
    selection = select_dataset(write_snapshot(tmp_path / "s.parquet", rows), _cfg())
    assert selection.counts["outside_label_set"] == 0 and selection.counts["selected"] == 30


def test_configured_label_set_and_gold_rows(tmp_path: Path) -> None:
    rows = [build_row(i, answer=LABELS[i % 3]) for i in range(30)]
    snapshot = write_snapshot(tmp_path / "s.parquet", rows)
    cfg = _cfg(label_set=("card_arrival", "lost_or_stolen_card"))
    assert select_dataset(snapshot, cfg).counts["outside_label_set"] == 10
    # A user's correction is ground truth, inside the label set or not.
    gold = _with_correction(snapshot, tmp_path / "g.parquet", "req-00002", "exchange_rate")
    selection = select_dataset(gold, cfg)
    assert selection.counts["outside_label_set"] == 9 and "req-00002" in _ids(selection)


def test_validator_hook(tmp_path: Path) -> None:
    rows = [build_row(i, answer=f"answer {i}") for i in range(20)]
    rows += [build_row(50 + i, answer=f"you get a refund {i}") for i in range(3)]
    snapshot = write_snapshot(tmp_path / "s.parquet", rows)
    spec = f"{__name__}:reject_mentions_refund"
    selection = select_dataset(snapshot, _cfg(answer_validator=spec))
    assert selection.counts["validator"] == 3 and len(_ids(selection)) == 20
    assert load_validator(f"{__name__}.reject_mentions_refund") is reject_mentions_refund
    with pytest.raises(ValueError, match="module:function"):
        load_validator("nodots")
    with pytest.raises(ValueError, match="not a callable"):
        load_validator(f"{__name__}:LABELS")


def explode_on_odd_rows(messages: list[dict[str, Any]], answer: str) -> bool:
    if answer.endswith(("1", "3", "5")):
        raise KeyError("a user's hook with a bug")
    return True


def test_a_raising_validator_rejects_only_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [build_row(i, answer=f"answer {i}") for i in range(20)]
    snapshot = write_snapshot(tmp_path / "s.parquet", rows)
    with caplog.at_level("WARNING", logger="trainer.validators"):
        selection = select_dataset(
            snapshot, _cfg(answer_validator=f"{__name__}:explode_on_odd_rows")
        )
    # answers ending in 1, 3 or 5 among 0..19: 1, 3, 5, 11, 13, 15
    assert selection.counts["validator_error"] == 6 and len(_ids(selection)) == 14
    # Logged once (rows are read newest first), by type and row id, never the message.
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert re.fullmatch(
        r"answer validator raised KeyError on row req-000(0[135]|1[135])", warnings[0]
    )
    assert "a user's hook with a bug" not in caplog.text


def test_a_validator_from_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from trainer import validators

    point = EntryPoint(
        name="no-refunds", value=f"{__name__}:reject_mentions_refund", group="distill.validators"
    )
    seen: list[tuple[str, str]] = []

    def fake_entry_points(group: str, name: str) -> list[EntryPoint]:
        seen.append((group, name))
        return [point] if name == "no-refunds" else []

    monkeypatch.setattr(validators, "entry_points", fake_entry_points)
    assert load_validator("no-refunds") is reject_mentions_refund
    rows = [build_row(i, answer=f"answer {i}") for i in range(10)]
    rows.append(build_row(50, answer="you get a refund"))
    selection = select_dataset(
        write_snapshot(tmp_path / "s.parquet", rows), _cfg(answer_validator="no-refunds")
    )
    assert selection.counts["validator"] == 1 and ("distill.validators", "no-refunds") in seen


def test_the_promotion_gate_compares_with_the_gold_label(tmp_path: Path) -> None:
    rows = [build_row(i, answer="card_arrival") for i in range(3)]
    snapshot = write_snapshot(tmp_path / "s.parquet", rows)
    gold = _with_correction(snapshot, tmp_path / "g.parquet", "req-00001", "lost_or_stolen_card")
    references = {r.id: r.reference for r in load_rows(gold, ["req-00000", "req-00001"], 16)}
    assert references == {"req-00000": "card_arrival", "req-00001": "lost_or_stolen_card"}
    # A snapshot from before feedback existed works as before.
    assert len(load_rows(snapshot, ["req-00001"], 16)) == 1
