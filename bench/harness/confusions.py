"""Which labels a classifier plausibly confuses with which: a similar-label map.

Similarity mixes what the customers say (cosine of bag-of-words centroids of each
label's queries) with the label names themselves (shared words). So Banking77's
`card_arrival` neighbours `card_delivery_estimate`, not a random intent.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

from bench.harness.examples import Example
from bench.harness.hashing import unit_hash

_WORD = re.compile(r"[a-z]+")
_STOP = frozenset(
    {
        "a", "an", "the", "i", "my", "me", "to", "is", "it", "of", "in", "on", "for", "and",
        "or", "was", "be", "can", "do", "did", "have", "has", "how", "what", "why", "when",
        "where", "this", "that", "with", "you", "your", "are", "am", "not", "no", "there",
        "get", "got",
    }
)  # fmt: skip
NAME_WEIGHT = 0.35

Neighbours = dict[str, list[tuple[str, float]]]
Vector = dict[str, float]


def words(text: str) -> list[str]:
    """Lower-case content words of a text."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def _normalised(counts: Counter[str]) -> Vector:
    norm = math.sqrt(sum(v * v for v in counts.values())) or 1.0
    return {w: v / norm for w, v in counts.items()}


def cosine(a: Vector, b: Vector) -> float:
    """Dot product of two L2-normalised sparse vectors."""
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(w, 0.0) for w, v in a.items())


def centroids(examples: Iterable[Example]) -> dict[str, Vector]:
    """Per label, the normalised TF-IDF vector of all its queries.

    IDF is over labels: a word every intent uses ("card") says little about which one.
    """
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for ex in examples:
        counts[ex.label].update(words(ex.text))
    label_df: Counter[str] = Counter()
    for c in counts.values():
        label_df.update(c.keys())
    n = len(counts)
    weighted = {
        label: Counter({w: v * math.log((1 + n) / (1 + label_df[w])) for w, v in c.items()})
        for label, c in counts.items()
    }
    return {label: _normalised(c) for label, c in weighted.items()}


def _name_overlap(a: str, b: str) -> float:
    wa, wb = set(a.split("_")), set(b.split("_"))
    return len(wa & wb) / len(wa | wb)


def label_neighbours(examples: Iterable[Example], labels: list[str], k: int = 6) -> Neighbours:
    """For every label, its k most confusable other labels with a similarity in (0, 1]."""
    vectors = centroids(examples)
    result: Neighbours = {}
    for label in labels:
        scored = []
        for other in labels:
            if other == label:
                continue
            text_sim = cosine(vectors.get(label, {}), vectors.get(other, {}))
            sim = (1 - NAME_WEIGHT) * text_sim + NAME_WEIGHT * _name_overlap(label, other)
            scored.append((other, max(sim, 1e-6)))
        scored.sort(key=lambda item: (-item[1], item[0]))
        result[label] = scored[:k]
    return result


def pick_confusion(label: str, neighbours: Neighbours, *key: object) -> str:
    """A wrong label for `label`, drawn from its neighbours weighted by similarity."""
    options = neighbours[label]
    total = sum(sim for _, sim in options)
    point = unit_hash("confusion", *key) * total
    for other, sim in options:
        point -= sim
        if point < 0:
            return other
    return options[-1][0]


def nearest_label(text: str, vectors: dict[str, Vector], labels: list[str]) -> str:
    """The label whose centroid best matches an unseen query (ties: list order)."""
    query = _normalised(Counter(words(text)))
    return max(labels, key=lambda label: cosine(query, vectors.get(label, {})))
