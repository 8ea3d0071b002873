"""The vote's linear head (trainer/head.py) and its place in the vote (trainer/vote.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainer.head import LinearHead, out_of_fold
from trainer.vote import META_FILE, VoteIndex, normalise

LABELS = ["balance", "card_lost", "refund"]


def _clusters(per_label: int = 12, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Three tight clusters of unit vectors in 8 dimensions, one per label."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8, dtype=np.float32)[:3]
    rows = [c + 0.15 * rng.normal(size=8) for c in centres for _ in range(per_label)]
    answers = [label for label in LABELS for _ in range(per_label)]
    return normalise(np.array(rows, dtype=np.float32)), answers


def test_the_head_learns_separable_labels_and_its_probabilities_sum_to_one() -> None:
    x, answers = _clusters()
    ids = np.array([LABELS.index(a) for a in answers])
    head = LinearHead.fit(x, ids, len(LABELS))
    probs = head.probs(x)
    assert probs.shape == (len(x), 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == ids).mean() == 1.0
    assert probs.max(axis=1).min() > 0.6  # confident on its own training rows


def test_out_of_fold_probabilities_come_from_heads_that_never_saw_the_row() -> None:
    x, answers = _clusters()
    ids = np.array([LABELS.index(a) for a in answers])
    # One odd row: a "refund" vector labelled "balance" and alone in its group. A head that
    # saw it would lean to "balance" there; out of fold the refund rows around it win.
    ids[-1] = 0
    groups = [f"q{i}" for i in range(len(x))]
    held = out_of_fold(x, ids, len(LABELS), groups)
    seen = LinearHead.fit(x, ids, len(LABELS)).probs(x)
    assert held[-1].argmax() == LABELS.index("refund")
    assert held[-1][0] < seen[-1][0]
    # A group is one fold: rows that are the same query get the same held-out head.
    same = out_of_fold(x[:4], ids[:4], len(LABELS), ["g", "g", "g", "g"])
    assert np.allclose(same, 1.0 / len(LABELS))  # everything in one fold: nothing to fit on
    with pytest.raises(ValueError, match="one group per row"):
        out_of_fold(x, ids, len(LABELS), groups[:-1])


def test_the_vote_blends_its_share_with_the_head() -> None:
    x, answers = _clusters()
    plain = VoteIndex.fit(x, answers, LABELS, k=30, power=8.0, encoder="m")
    blended = VoteIndex.fit(x, answers, LABELS, k=30, power=8.0, encoder="m", head_weight=0.5)
    assert plain.head is None and blended.head is not None
    query = x[0]
    share = plain.vote(query).share
    prob = blended.head.probs(query[None, :])[0][0]
    vote = blended.vote(query)
    assert vote.label == "balance"
    assert vote.share == pytest.approx(0.5 * share + 0.5 * prob, rel=1e-5)
    assert len(vote.ranking) == 3 and vote.ranking[0][0] == "balance"


def test_leave_one_out_with_the_head_uses_out_of_fold_probabilities() -> None:
    x, answers = _clusters()
    index = VoteIndex.fit(x, answers, LABELS, k=5, power=1.0, encoder="m", head_weight=1.0)
    groups = [f"q{i}" for i in range(len(x))]
    held = out_of_fold(index.embeddings, index.labels, len(LABELS), groups)
    votes = index.leave_one_out(groups)
    assert [v.share for v in votes] == pytest.approx(held.max(axis=1).tolist(), rel=1e-5)


def test_a_head_round_trips_and_an_index_without_one_still_loads(tmp_path: Path) -> None:
    x, answers = _clusters()
    index = VoteIndex.fit(x, answers, LABELS, k=5, power=8.0, encoder="m", head_weight=0.5)
    index.save(tmp_path / "with")
    again = VoteIndex.load(tmp_path / "with")
    assert again.meta == index.meta and again.head is not None
    query = normalise(np.array([0.5, 0.5, 0.1, 0, 0, 0, 0, 0], dtype=np.float32))
    assert again.vote(query[0]).share == pytest.approx(index.vote(query[0]).share, rel=1e-3)
    # An index written before the head existed: no head_weight in its meta, no head arrays.
    old = VoteIndex.fit(x, answers, LABELS, k=5, power=8.0, encoder="m")
    old.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / META_FILE).read_text())
    meta.pop("head_weight")
    (tmp_path / "old" / META_FILE).write_text(json.dumps(meta))
    loaded = VoteIndex.load(tmp_path / "old")
    assert loaded.head is None and loaded.vote(x[0]).label == "balance"


def test_a_weight_without_a_head_is_refused() -> None:
    x, answers = _clusters()
    index = VoteIndex.fit(x, answers, LABELS, k=5, power=8.0, encoder="m", head_weight=0.5)
    with pytest.raises(ValueError, match="head weight needs a head"):
        VoteIndex(index.embeddings, index.labels, index.meta)
