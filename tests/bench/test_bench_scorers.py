"""The offline scorer comparison, on a log built with the proxy's own schema."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import pytest

from bench.banking77.scorers import (
    Scored,
    best_scorer,
    compare_scorers,
    coverage_curve,
    load_scored,
)
from proxy.logstore.schema import migrate

LABELS = ["card_arrival", "lost_or_stolen_card", "top_up_failed"]


def _response(answer: str, logprobs: list[float], spread: float) -> dict[str, Any]:
    """A chat completion whose tokens have these logprobs; `spread` sets the top-k entropy."""
    content = [
        {
            "token": f"t{i}",
            "logprob": lp,
            "top_logprobs": [
                {"token": f"t{i}", "logprob": lp},
                {"token": "x", "logprob": lp - spread},
            ],
        }
        for i, lp in enumerate(logprobs)
    ]
    return {
        "choices": [
            {"message": {"role": "assistant", "content": answer}, "logprobs": {"content": content}}
        ]
    }


def _log(db: Path, rows: list[tuple[str, str, dict[str, Any] | None]]) -> None:
    con = duckdb.connect(str(db))
    migrate(con)
    for i, (query, version, response) in enumerate(rows):
        request = {
            "messages": [
                {"role": "system", "content": "Classify."},
                {"role": "user", "content": f" {query} "},
            ]
        }
        con.execute(
            "INSERT INTO requests (id, created_at, student_version, request_json, "
            "student_response_json) VALUES (?, now(), ?, ?, ?)",
            [
                f"r{i}",
                version,
                json.dumps(request),
                json.dumps(response) if response is not None else None,
            ],
        )
    con.close()


def test_scorers_rank_the_same_answers_differently(tmp_path: Path) -> None:
    db = tmp_path / "distill.duckdb"
    gold = {
        "where is my card": "card_arrival",
        "card stolen": "lost_or_stolen_card",
        "top up failed": "top_up_failed",
        "unknown query": "card_arrival",
    }
    # Right answers: one sure token then a shaky one (mean high, min low).
    # Wrong answers: two middling tokens (mean lower, min higher).
    _log(
        db,
        [
            ("where is my card", "v1", _response("card_arrival", [-0.01, -1.0], 5.0)),
            ("card stolen", "v1", _response("Lost or stolen card.", [-0.01, -1.0], 5.0)),
            ("top up failed", "v1", _response("card_arrival", [-0.6, -0.6], 0.1)),
            ("not in the dataset", "v1", _response("card_arrival", [-0.1], 1.0)),
            ("where is my card", "v1", None),
        ],
    )
    items = load_scored(db, gold, LABELS)
    assert [i.correct for i in items] == [True, True, False]  # unknown query, no answer: out
    assert items[0].scores["min_prob"] == pytest.approx(math.exp(-1.0))
    report = compare_scorers(items)["v1"]
    assert report["n"] == 3 and report["accuracy"] == pytest.approx(2 / 3)
    curves = report["scorers"]
    assert curves["mean_logprob"]["accuracy_at"]["0.5"] == 1.0  # right answers first
    assert curves["min_prob"]["accuracy_at"]["0.1"] == 0.0  # the wrong one first
    assert curves["mean_logprob"]["auc"] > curves["min_prob"]["auc"]
    assert best_scorer(report) != "min_prob"


def test_perfect_ranking_has_auc_one_and_empty_has_none() -> None:
    items = [
        Scored("v", None, correct, {"s": score})
        for correct, score in [(False, 0.1), (True, 0.9), (True, 0.5)]
    ]
    assert coverage_curve(items, "s")["auc"] == pytest.approx(1 - (1 / 3) / 3)
    assert coverage_curve(items[1:], "s")["auc"] == 1.0
    assert coverage_curve([], "mean_logprob") == {"n": 0, "auc": None, "accuracy_at": {}}
