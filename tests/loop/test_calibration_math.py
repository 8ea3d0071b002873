"""The threshold math on hand-built pairs (no server)."""

from __future__ import annotations

import math

import pytest

from proxy.loop.calibration import (
    Pair,
    agrees,
    choose_threshold,
    pairs_from_texts,
    wilson,
    z_value,
)


def pairs(spec: list[tuple[float, int, int]]) -> list[Pair]:
    """[(confidence, agreeing, disagreeing)] -> pairs."""
    out = []
    for confidence, good, bad in spec:
        out += [Pair(confidence, True)] * good + [Pair(confidence, False)] * bad
    return out


def test_wilson_matches_the_textbook_values() -> None:
    lo, hi = wilson(0.9, 100, z_value(0.95))
    assert lo == pytest.approx(0.8256, abs=1e-3)
    assert hi == pytest.approx(0.9448, abs=1e-3)
    lo, hi = wilson(1.0, 10, 1.96)
    assert lo == pytest.approx(0.7225, abs=1e-3) and hi == 1.0
    assert wilson(0.5, 0, 1.96) == (0.0, 1.0)


def test_no_pairs_means_uncalibrated() -> None:
    result = choose_threshold([], target=0.9, min_pairs=10)
    assert result.status == "not_enough_pairs"
    assert result.threshold is None and result.pairs == 0


def test_too_few_pairs_even_if_all_agree() -> None:
    result = choose_threshold(pairs([(-0.1, 9, 0)]), target=0.5, min_pairs=10)
    assert result.status == "not_enough_pairs" and result.threshold is None
    assert result.pairs_used == 9


def test_picks_the_lowest_threshold_whose_served_set_meets_the_target() -> None:
    # Confident answers agree, hesitant ones do not: the cut sits where agreement breaks.
    spec = [(-0.01, 60, 0), (-0.05, 40, 0), (-0.5, 5, 5), (-1.5, 0, 50)]
    result = choose_threshold(pairs(spec), target=0.85, min_pairs=20)
    assert result.status == "calibrated"
    assert result.threshold == -0.5
    assert result.pairs_used == 110
    assert result.agreement == pytest.approx(105 / 110)
    # One-sided exact (Clopper-Pearson) lower bound of 105/110 at 95 %.
    assert result.lower == pytest.approx(0.9068, abs=1e-3)
    assert result.upper is not None and result.upper >= result.agreement
    assert result.coverage == pytest.approx(110 / 160)
    assert result.method == "fixed_sequence_binomial" and result.tests == 4
    # Including the -1.5 bucket would drop agreement to 105/160: below target. At 0.95 the
    # -0.5 bucket's bound (0.907) is short, so only the perfect answers are served.
    stricter = choose_threshold(pairs(spec), target=0.95, min_pairs=20)
    assert stricter.threshold == -0.05 and stricter.pairs_used == 100


def test_the_walk_stops_at_the_first_threshold_it_cannot_pass() -> None:
    # The top 60 are mixed, the next 60 perfect: over all 120 the bound would pass 0.8,
    # but the walk starts at the top (a fifth of the pairs, min 30) and stops there.
    spec = [(-0.01, 40, 20), (-0.05, 60, 0)]
    result = choose_threshold(pairs(spec), target=0.8, min_pairs=30)
    assert result.status == "target_not_reached" and result.threshold is None
    assert result.best is not None and result.best["pairs_used"] == 120


def test_unreachable_target_reports_the_best_supported_value() -> None:
    spec = [(-0.01, 90, 10), (-0.5, 50, 50)]
    result = choose_threshold(pairs(spec), target=0.95, min_pairs=20)
    assert result.status == "target_not_reached"
    best = result.best
    assert best is not None and best["threshold"] == -0.01 and best["pairs_used"] == 100
    assert 0.83 < best["agreement_lower"] < 0.9  # exact bound of 90/100
    assert best["coverage"] == pytest.approx(0.5)
    # Asking for what the evidence supports opens the gate at that threshold.
    opened = choose_threshold(pairs(spec), target=best["agreement_lower"] - 1e-4, min_pairs=20)
    assert opened.threshold == -0.01


def test_lower_bound_not_point_estimate_decides() -> None:
    # 29 of 30 agree: 96.7 % point estimate, but the exact lower bound is about 0.85.
    result = choose_threshold(pairs([(-0.1, 29, 1)]), target=0.9, min_pairs=10)
    assert result.status == "target_not_reached" and result.threshold is None
    assert result.agreement == pytest.approx(29 / 30)
    assert result.lower is not None and result.lower < 0.9


def test_ties_are_admitted_together() -> None:
    # All three pairs at -0.2 are served by a threshold of -0.2, including the bad one.
    result = choose_threshold(pairs([(-0.1, 30, 0), (-0.2, 2, 1)]), target=0.8, min_pairs=5)
    assert result.threshold == -0.2
    assert result.pairs_used == 33


def test_unscorable_answers_never_become_thresholds() -> None:
    data = pairs([(-0.1, 40, 0)]) + [Pair(-math.inf, False)] * 5
    result = choose_threshold(data, target=0.8, min_pairs=10)
    assert result.threshold == -0.1
    assert result.pairs == 45 and result.pairs_used == 40


def test_shadow_pairs_count_once_in_the_bound_and_for_their_traffic_in_coverage() -> None:
    rows = [(-0.05, "positive", "positive", True)] * 30 + [(-1.0, "maybe", "negative", False)] * 30
    logged = pairs_from_texts(rows, shadow_rate=0.1)
    assert {p.stands_for for p in logged if p.agree} == {10.0}
    assert {p.weight for p in logged} == {1.0}
    result = choose_threshold(logged, target=0.85, min_pairs=10)
    plain = choose_threshold(pairs([(-0.05, 30, 0), (-1.0, 0, 30)]), target=0.85, min_pairs=10)
    assert result.threshold == -0.05
    assert result.coverage == pytest.approx(300 / 330)
    assert result.lower == pytest.approx(plain.lower)  # 30 samples are 30 trials, not 3


def test_shadow_samples_beside_unweighted_evidence_do_not_shrink_it() -> None:
    # 300 held-out pairs, 90% agreeing at the top, and 20 shadow samples of the served
    # traffic with the same rate: the bound must not fall because the shadows arrived.
    held_out = pairs([(0.9, 180, 20), (0.3, 40, 60)])
    shadows = pairs_from_texts([(0.9, "a", "a", True)] * 18 + [(0.9, "a", "b", True)] * 2, 0.1)
    before = choose_threshold(held_out, target=0.8, min_pairs=30)
    after = choose_threshold(held_out + shadows, target=0.8, min_pairs=30)
    assert before.threshold == after.threshold == 0.9
    assert after.lower is not None and before.lower is not None
    assert after.lower >= before.lower


def test_agreement_rule_short_and_long_answers() -> None:
    assert agrees("Card_Arrival", "card arrival")
    assert not agrees("card", "card arrival")
    long_ref = "the card will arrive within five working days after you order it online"
    assert agrees(long_ref.replace("online", "on the web"), long_ref)  # F1 >= 0.8
    assert not agrees("it never arrives", long_ref)
