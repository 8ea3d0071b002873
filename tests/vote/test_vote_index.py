"""The vote index (trainer/vote.py): fitting, the vote and its share, files, query text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.vote import VoteIndex, VoteIndexError, is_vote_dir, log_share, query_text

LABELS = ["card_arrival", "card_lost", "refund"]


def _index(k: int = 3, power: float = 1.0) -> VoteIndex:
    vectors = np.array(
        [[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.95, 0.05], [0, 0, 1], [0.1, 0, 0.9]],
        dtype=np.float32,
    )
    answers = ["card_arrival", "card_arrival", "card_lost", "card_lost", "refund", "off-set"]
    return VoteIndex.fit(vectors, answers, LABELS, k=k, power=power, encoder="minilm")


def test_fit_keeps_only_rows_whose_answer_is_a_label() -> None:
    index = _index()
    assert len(index) == 5  # "off-set" cannot be voted for
    assert index.meta.labels == tuple(LABELS) and index.meta.dim == 3


def test_the_nearest_rows_decide_and_the_share_is_the_confidence() -> None:
    index = _index(k=2)
    vote = index.vote(np.array([1.0, 0.05, 0.0]))
    assert vote.label == "card_arrival" and vote.share == pytest.approx(1.0)
    split = _index(k=4, power=0.0).vote(np.array([0.7, 0.7, 0.0]))
    assert {label for label, _ in split.ranking} == {"card_arrival", "card_lost"}
    assert split.share == pytest.approx(0.5)  # a plain majority: two against two
    assert sum(share for _, share in split.ranking) == pytest.approx(1.0)


def test_a_higher_power_lets_the_closest_neighbour_weigh_more() -> None:
    query = np.array([0.8, 0.6, 0.0])
    flat = _index(k=4, power=0.0).vote(query)
    sharp = _index(k=4, power=8.0).vote(query)
    assert sharp.label == "card_arrival"
    assert sharp.share > flat.share


def test_vote_many_equals_one_by_one() -> None:
    index = _index()
    queries = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    assert [v.label for v in index.vote_many(queries)] == [index.vote(q).label for q in queries]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    index = _index()
    index.save(tmp_path / "classifier")
    assert is_vote_dir(tmp_path / "classifier") and not is_vote_dir(tmp_path)
    again = VoteIndex.load(tmp_path / "classifier")
    query = np.array([0.0, 0.2, 1.0])
    assert again.vote(query).label == index.vote(query).label == "refund"
    assert again.meta == index.meta


def test_an_unreadable_index_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "vote.json").write_text("{not json")
    with pytest.raises(VoteIndexError, match="cannot read the vote index"):
        VoteIndex.load(tmp_path)


def test_query_text_is_the_last_user_message() -> None:
    messages = [
        {"role": "system", "content": "Classify."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": [{"type": "text", "text": " where is my card "}]},
    ]
    assert query_text(messages) == "where is my card"
    assert query_text([{"role": "system", "content": "only"}]) is None
    assert log_share(1.0) == 0.0 and log_share(0.0) < -1000


def test_leave_one_out_never_lets_a_row_or_its_repeats_vote_for_itself() -> None:
    vectors = np.array([[1, 0], [1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    answers = ["card_arrival", "refund", "card_arrival", "refund", "refund"]
    index = VoteIndex.fit(vectors, answers, LABELS, k=1, power=1.0, encoder="minilm")
    # Rows 0 and 1 are the same query (one prompt hash): neither may find the other.
    votes = index.leave_one_out(["q0", "q0", "q2", "q3", "q4"])
    assert [v.label for v in votes] == ["card_arrival", "card_arrival", "card_arrival",
                                        "refund", "refund"]  # fmt: skip
    pairs = index.loo_pairs(["q0", "q0", "q2", "q3", "q4"])
    assert [p["agree"] for p in pairs] == [True, False, True, True, True]
    assert all(0.0 < p["confidence"] <= 1.0 for p in pairs)
    with pytest.raises(ValueError, match="one group per stored row"):
        index.leave_one_out(["q0"])


def test_the_calibrator_reads_a_vote_runs_leave_one_out_pairs(tmp_path: Path) -> None:
    from proxy.loop.calibrator import load_loo_pairs

    assert load_loo_pairs(tmp_path) == []  # a LoRA run has none
    (tmp_path / "classifier").mkdir()
    (tmp_path / "classifier" / "loo_pairs.json").write_text(
        '{"pairs": [{"confidence": 0.9, "agree": true}, {"confidence": 0.2, "agree": false}]}'
    )
    pairs = load_loo_pairs(tmp_path)
    assert [(p.confidence, p.agree) for p in pairs] == [(0.9, True), (0.2, False)]


def test_the_prior_keeps_a_query_far_from_every_row_unsure() -> None:
    rows = np.array([[1.0, 0.0, 0.0], [0.99, 0.14, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    answers = ["card", "card", "refund"]
    plain = VoteIndex.fit(rows, answers, ["card", "refund"], k=2, power=8.0, encoder="m")
    wary = VoteIndex.fit(rows, answers, ["card", "refund"], k=2, power=8.0, encoder="m", prior=0.02)
    near, far = np.array([1.0, 0.05, 0.0]), np.array([0.45, 0.0, 0.89])  # far: cosine ~0.45
    assert plain.vote(far).share == pytest.approx(1.0)  # two distant neighbours agree
    assert wary.vote(far).share < 0.5  # ... which says little: the prior outweighs them
    assert wary.vote(near).label == "card" and wary.vote(near).share > 0.95
    assert wary.vote(np.array([0.0, 0.0, 1.0])).share == 0.0  # orthogonal to every row
