"""The second-opinion rules (bench/closed_set/second_opinion.py) on synthetic answers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench.closed_set.compare import coverage_at
from bench.closed_set.second_opinion import (
    AGREE,
    EITHER,
    LORA,
    VOTE,
    LoraRound,
    Opinions,
    Setup,
    bootstrap_gain,
    check_traffic,
    coverage_among,
    coverage_either,
    coverages,
    judge_round,
    loosest,
    lora_rounds,
    lora_train_mask,
    render,
)


def _arr(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=float)


def test_a_threshold_serves_a_whole_tie_group_or_none_of_it() -> None:
    correct, conf = _arr(1, 0, 1, 1), _arr(1.0, 1.0, 0.9, 0.5)
    every = np.ones(4, dtype=bool)
    # compare.py's prefix cut splits the tie at 1.0, which no threshold can do.
    assert coverage_at(correct, conf, 0.95) == 0.25
    assert coverage_among(correct, conf, every, 0.95) == 0.0
    assert coverage_among(correct, conf, every, 0.75) == 1.0
    assert coverage_among(correct, conf, every, 0.5) == 1.0


def test_coverage_among_counts_only_eligible_queries_but_divides_by_all() -> None:
    correct, conf = _arr(0, 1, 1, 0, 1), _arr(0.9, 0.8, 0.7, 0.6, 0.5)
    eligible = np.array([False, True, True, False, True])
    assert coverage_among(correct, conf, eligible, 0.95) == pytest.approx(3 / 5)
    assert coverage_among(correct, conf, np.zeros(5, dtype=bool), 0.95) == 0.0


def test_either_serves_every_agreeing_query_then_the_most_confident_others() -> None:
    correct = _arr(1, 1, 1, 1, 0, 1)
    share = _arr(0.2, 0.3, 0.9, 0.8, 0.7, 0.6)
    agree = np.array([True, True, False, False, False, False])
    # agreeing 2 + shares 0.9 and 0.8: 4 of 4 right; 0.7 brings a miss (4/5 = 0.8).
    assert coverage_either(correct, share, agree, 0.95) == pytest.approx(4 / 6)
    assert coverage_either(correct, share, agree, 0.8) == pytest.approx(6 / 6)
    # When the agreeing queries alone miss the precision, no t can serve anything.
    assert coverage_either(_arr(0, 1), _arr(0.1, 0.9), np.array([True, False]), 0.95) == 0.0
    # A tie among the others is served whole or not at all (a t cannot split it).
    tied = coverage_either(_arr(1, 1, 0), _arr(0.1, 0.9, 0.9), np.array([True, False, False]), 0.95)
    assert tied == pytest.approx(1 / 3)
    # Nobody agrees: the rule is the vote alone.
    none = np.zeros(6, dtype=bool)
    every = np.ones(6, dtype=bool)
    assert coverage_either(correct, share, none, 0.95) == coverage_among(
        correct, share, every, 0.95
    )


def _misranked_vote(n: int = 20) -> tuple[Opinions, np.ndarray]:
    """The vote is wrong on the fifth of the queries it is surest of, the LoRA agrees only
    where the vote is right (and is itself right on those, wrong elsewhere)."""
    truth = np.array([f"l{i % 5}" for i in range(n)])
    vote = truth.copy()
    vote[: n // 5] = "wrong"
    share = np.linspace(1.0, 0.3, n)
    lora = np.where(np.arange(n) < n // 5, "other", truth)
    lora_score = np.linspace(0.2, 0.9, n)
    return Opinions(vote, share, lora, lora_score), truth


def test_agreement_admits_what_the_vote_alone_cannot_rank() -> None:
    op, truth = _misranked_vote()
    cov = coverages(op, truth, 0.95)
    assert cov[VOTE] == 0.0  # the 4 surest votes are wrong: no threshold reaches 95%
    assert cov[AGREE] == pytest.approx(16 / 20)
    assert cov[EITHER] == pytest.approx(16 / 20)  # adding any vote-only answer adds a miss
    assert cov[LORA] == pytest.approx(16 / 20)  # its score ranks its 4 misses last
    assert loosest(op, truth)[AGREE] == (pytest.approx(0.8), pytest.approx(1.0))
    assert loosest(op, truth)[VOTE] == (1.0, pytest.approx(0.8))


def test_bootstrap_gain_is_paired_and_seeded() -> None:
    op, truth = _misranked_vote(200)
    gain = bootstrap_gain(op, truth, 0.95, reps=200, seed=3)
    assert gain[VOTE] == (0.0, 0.0)
    lo, hi = gain[AGREE]
    assert 0.7 < lo <= 0.8 <= hi <= 0.9  # the gain on the whole sample is 80 points
    assert bootstrap_gain(op, truth, 0.95, reps=200, seed=3) == gain
    # A resample that draws few of the vote's misses lets the vote alone serve everything.
    small = bootstrap_gain(*_misranked_vote(20), 0.95, reps=200, seed=3)
    assert small[AGREE][0] < 0 < small[AGREE][1]


def _record(index: int, gold: str, predicted: str, route: str = "teacher") -> dict[str, Any]:
    return {"index": index, "gold": gold, "predicted": predicted, "route": route}


def _raw() -> dict[str, Any]:
    val = [
        {**_record(1_000_001, "b", "b", "student"), "scores": {"sequence_prob": 0.9}},
        {**_record(1_000_000, "a", "x", "student"), "scores": {"sequence_prob": 0.4}},
    ]
    run = {"status": "promoted", "id": "r1", "raw": {"config_json": '{"eval_fraction": 0.2}'}}
    return {
        "segments": [
            {
                "round": 1,
                "records": [_record(1, "b", "b"), _record(0, "a", "a")],
                "run": run,
                "training_seconds": 420.0,
                "validation": {"records": val},
            },
            {
                "round": 2,
                "records": [_record(2, "c", "z"), _record(3, "d", "d", "student")],
                "run": {**run, "id": "r2", "status": "failed"},
                "training_seconds": 9.0,
                "validation": {"records": val},
            },
        ],
        "run_reports": {"r1": {"train_rows": 1}},
    }


def test_lora_rounds_reads_promoted_rounds_by_validation_index() -> None:
    (rnd,) = lora_rounds(_raw(), 2)  # round 2's run failed: round 1's adapter still serves
    assert (rnd.round, rnd.teacher_answers, rnd.train_rows) == (1, 2, 1)
    assert rnd.answers.tolist() == ["x", "b"]
    assert rnd.scores["sequence_prob"].tolist() == [0.4, 0.9]
    assert rnd.split == {"eval_fraction": 0.2}


def test_check_traffic_counts_what_differs_from_the_assumed_order_and_labels() -> None:
    traffic = [SimpleNamespace(label=x) for x in "abcd"]
    validation = [SimpleNamespace(label="a"), SimpleNamespace(label="q")]
    checks = check_traffic(_raw(), traffic, ["a", "b", "c", "d"], validation)
    assert checks["traffic_rows"] == 4
    assert checks["not_in_order"] == 0  # records are sorted by index within a segment
    assert checks["gold_differs"] == 0
    assert checks["teacher_differs"] == 1  # index 2: the run's teacher said z, not c
    assert checks["validation_gold_differs"] == 2  # index 1 ("b" vs "q"), twice


def test_lora_train_mask_follows_the_runs_split_fractions() -> None:
    texts = [f"query number {i}" for i in range(400)]
    mask = lora_train_mask(texts, ["a", "b"], {"eval_fraction": 0.1, "calibration_fraction": 0.15})
    assert 0.65 < mask.mean() < 0.85
    held_out_more = lora_train_mask(
        texts, ["a", "b"], {"eval_fraction": 0.4, "calibration_fraction": 0.4}
    )
    assert held_out_more.mean() < 0.35
    assert not (held_out_more & ~mask).any()  # the buckets nest: a wider hold-out only adds


def test_judge_round_fits_the_vote_on_the_rounds_rows_and_renders() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8, dtype=np.float32)
    y = rng.integers(0, 3, 60)
    x = centres[y] + 0.05 * rng.standard_normal((60, 8)).astype(np.float32)
    yv = np.arange(30) % 3
    xv = centres[yv] + 0.05 * rng.standard_normal((30, 8)).astype(np.float32)
    labels = ["a", "b", "c"]
    gold = np.array(labels)[yv]
    setup = Setup(labels, x, [labels[i] for i in y], xv, {"gold": gold, "teacher": gold}, None)
    rnd = LoraRound(1, 40, 30, 420.0, np.array(["a"] * 30), {"sequence_prob": np.ones(30)}, {})
    res = judge_round(setup, rnd, "sequence_prob", reps=20)
    assert res["vote_rows"] == 40
    assert res["gold"]["coverage"][VOTE] == 1.0  # well-separated clusters: every vote right
    assert res["gold"]["loosest"][AGREE] == (pytest.approx(1 / 3), 1.0)
    lines = render([res], "sequence_prob")
    rule_rows = [line for line in lines if line.startswith(("| 1 | 40 (40 / 30) |", "|  |  |"))]
    assert [row.split(" | ")[2] for row in rule_rows] == [
        VOTE,
        f"{LORA} (`sequence_prob`)",
        AGREE,
        EITHER,
    ]
    assert "| 1 | 7.0 min |" in "\n".join(lines)
