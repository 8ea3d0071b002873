"""Local generation pieces: the closed-set constraint (a token trie, like vLLM's choice)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402

from trainer.hfgen import ChoiceConstraint  # noqa: E402

STOP = 9


def allowed(constraint: ChoiceConstraint, sequence: list[int]) -> set[int]:
    out = constraint(torch.tensor([sequence]), torch.zeros(1, 10))
    return {i for i in range(10) if math.isfinite(float(out[0, i]))}


def test_choice_constraint_follows_the_label_trie() -> None:
    # Labels as token ids [1, 2], [1, 3, 4] and [5], after a prompt of two tokens (7, 7).
    constraint = ChoiceConstraint([[1, 2], [1, 3, 4], [5]], prompt_len=2, stop_id=STOP)
    assert allowed(constraint, [7, 7]) == {1, 5}
    assert allowed(constraint, [7, 7, 1]) == {2, 3}
    assert allowed(constraint, [7, 7, 1, 3]) == {4}
    assert allowed(constraint, [7, 7, 1, 3, 4]) == {STOP}
    assert allowed(constraint, [7, 7, 5]) == {STOP}


def test_unknown_prefix_can_only_stop() -> None:
    constraint = ChoiceConstraint([[1, 2]], prompt_len=0, stop_id=STOP)
    assert allowed(constraint, [8]) == {STOP}
