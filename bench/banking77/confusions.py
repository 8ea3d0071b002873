"""Old import path of `bench.harness.confusions` (the harness every benchmark shares)."""

from __future__ import annotations

from bench.harness.confusions import (
    Neighbours,
    Vector,
    centroids,
    cosine,
    label_neighbours,
    nearest_label,
    pick_confusion,
    words,
)
from bench.harness.hashing import unit_hash

__all__ = [
    "Neighbours",
    "Vector",
    "centroids",
    "cosine",
    "label_neighbours",
    "nearest_label",
    "pick_confusion",
    "unit_hash",
    "words",
]
