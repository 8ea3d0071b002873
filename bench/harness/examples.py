"""Labelled queries, the fixed-seed stratified train/validation split, and the traffic order.

Every task's data becomes `Example`s; the split and the order are the same code for all
tasks, so a task only decides what its label (the stratum) and its expected answer are.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_VALIDATION_FRACTION = 0.1


@dataclass(frozen=True, slots=True)
class Example:
    """One query with its gold answer.

    `label` is the class the split stratifies on (an intent); `target` is the full expected
    answer when it is not the label itself (a JSON extraction, a reference reply). `task`
    names the task in mixed traffic ("" where a benchmark has one task).
    """

    text: str
    label: str
    task: str = ""
    target: str | None = None

    @property
    def answer(self) -> str:
        """What a perfect model answers."""
        return self.target if self.target is not None else self.label


@dataclass(frozen=True, slots=True)
class Split:
    """Traffic-side training part and the held-out validation part."""

    train: tuple[Example, ...]
    validation: tuple[Example, ...]


def stratified_split(
    examples: Iterable[Example],
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = 0,
) -> Split:
    """Per label, a seeded shuffle puts round(n * fraction) rows (at least one) in validation.

    Deterministic for a given input order and seed; the two parts are disjoint and
    together cover every example exactly once.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError("validation_fraction must be in (0, 1)")
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.label].append(ex)
    rng = random.Random(seed)
    train: list[Example] = []
    validation: list[Example] = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        n_val = max(1, round(len(group) * validation_fraction))
        validation.extend(group[:n_val])
        train.extend(group[n_val:])
    return Split(train=tuple(train), validation=tuple(validation))


def traffic_order(train: tuple[Example, ...], seed: int = 0) -> list[Example]:
    """The training part in the (seeded, shuffled) order the traffic driver sends it."""
    order = list(train)
    random.Random(seed + 1).shuffle(order)
    return order


def distinct_texts(examples: Iterable[Example]) -> list[Example]:
    """One example per distinct (stripped) text, in input order.

    A query that appears twice could land in both parts of a split; keeping one copy
    stops a validation query from also being sent as traffic.
    """
    seen: set[str] = set()
    out: list[Example] = []
    for ex in examples:
        if ex.text and ex.text not in seen:
            seen.add(ex.text)
            out.append(ex)
    return out


def round_robin(examples: Iterable[Example], limit: int) -> list[Example]:
    """Up to `limit` examples, labels taken in turn so that every label appears (the
    validation queries a benchmark measures the student on each round)."""
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.label].append(ex)
    total = sum(len(group) for group in by_label.values())
    ordered: list[Example] = []
    depth = 0
    while len(ordered) < min(limit, total):
        for label in sorted(by_label):
            if depth < len(by_label[label]):
                ordered.append(by_label[label][depth])
        depth += 1
    return ordered[:limit]
