"""A replay teacher's decisions on a closed label set: which label it answers, deterministically.

A query from the dataset is answered with its gold label with probability `accuracy`
(a seeded hash of the query decides, so a rerun gives the same answers); otherwise with
a plausible confusion from the similar-label map. Queries it has never seen get the
label whose vocabulary matches best.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bench.harness.confusions import (
    Neighbours,
    Vector,
    centroids,
    label_neighbours,
    nearest_label,
    pick_confusion,
)
from bench.harness.examples import Example
from bench.harness.hashing import unit_hash


@dataclass(frozen=True, slots=True)
class Decision:
    """What the teacher answers for one query (and one sample index)."""

    label: str
    gold: str | None
    correct: bool


class ReplayOracle:
    """Maps queries to labels with a configured accuracy and plausible mistakes."""

    def __init__(
        self,
        examples: Iterable[Example],
        labels: list[str],
        accuracy: float = 0.92,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError("accuracy must be in [0, 1]")
        rows = list(examples)
        self.labels = labels
        self.accuracy = accuracy
        self.seed = seed
        self._gold = {ex.text: ex.label for ex in rows}
        self._vectors: dict[str, Vector] = centroids(rows)
        self.neighbours: Neighbours = label_neighbours(rows, labels)

    def gold(self, query: str) -> str | None:
        """The dataset label of a known query, None for an unseen one."""
        return self._gold.get(query.strip())

    def decide(self, query: str, sample: int = 0) -> Decision:
        """The label answered for `query`; `sample` > 0 are extra samples (the `n` parameter)."""
        query = query.strip()
        gold = self._gold.get(query)
        if gold is None:
            guess = nearest_label(query, self._vectors, self.labels)
            return Decision(label=guess, gold=None, correct=False)
        if unit_hash(self.seed, "correct", query, sample) < self.accuracy:
            return Decision(label=gold, gold=gold, correct=True)
        wrong = pick_confusion(gold, self.neighbours, self.seed, query, sample)
        return Decision(label=wrong, gold=gold, correct=False)

    def rivals(self, decision: Decision) -> list[str]:
        """Labels competing with the answer, most plausible first (the gold one if missed)."""
        ordered: list[str] = []
        if decision.gold is not None and decision.gold != decision.label:
            ordered.append(decision.gold)
        for other, _ in self.neighbours.get(decision.label, []):
            if other not in ordered and other != decision.label:
                ordered.append(other)
        return ordered
