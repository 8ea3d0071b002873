"""The vote student's index: a closed-set task answered by a nearest-neighbour vote over
sentence embeddings of the teacher-labelled queries.

Fitting is storing: the training rows' query embeddings (L2-normalised) and their labels.
A query's answer is the label with the largest similarity-weighted vote among its `k`
nearest stored rows; its confidence is that label's share of the vote (0..1; the vote
counts a small `prior` weight for no label, so a query far from every row has a low
share), which the calibration gate turns into a threshold like any other score. NumPy
only: the proxy serves with this module and the gate measures with it, so both compute
the same vote.

On disk (a directory, the run's ``classifier/``): ``index.npz`` (``embeddings`` float16,
``labels`` int32) and ``vote.json`` (label names, k, weighting, encoder name, dimension).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

INDEX_FILE = "index.npz"
META_FILE = "vote.json"
LOO_FILE = "loo_pairs.json"
VOTE_DIR = "classifier"  # in a run directory, where a LoRA run has adapter/
KIND = "vote"


class VoteIndexError(RuntimeError):
    """The index directory is missing or unreadable."""


@dataclass(frozen=True)
class VoteMeta:
    labels: tuple[str, ...]
    k: int
    power: float
    """Neighbour weight = similarity ** power (0: a plain majority vote)."""
    encoder: str
    """Served name of the embedding model the vectors came from (queries need the same)."""
    dim: int
    kind: str = KIND
    prior: float = 0.0
    """Weight of an implicit neighbour that votes for no label: a query far from every
    stored row (an out-of-scope one) gets a small share although its few distant
    neighbours agree (all-MiniLM-L6-v2: 0.02 is one neighbour at cosine 0.61)."""


@dataclass(frozen=True)
class Vote:
    label: str
    share: float
    """The winning label's share of the weighted vote (the confidence)."""
    ranking: tuple[tuple[str, float], ...]
    """Every label that got a vote, with its share, best first."""


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


class VoteIndex:
    def __init__(self, embeddings: np.ndarray, labels: np.ndarray, meta: VoteMeta) -> None:
        if embeddings.shape[0] != labels.shape[0]:
            raise ValueError("one label per embedding")
        if embeddings.shape[0] == 0:
            raise ValueError("an empty index cannot vote")
        self.embeddings = normalise(embeddings)
        self.labels = labels.astype(np.int32)
        self.meta = meta

    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        answers: Sequence[str],
        labels: Sequence[str],
        *,
        k: int,
        power: float,
        encoder: str,
        prior: float = 0.0,
    ) -> VoteIndex:
        """Stores the rows whose answer is one of `labels` (others cannot be voted for)."""
        position = {label: i for i, label in enumerate(labels)}
        keep = [i for i, a in enumerate(answers) if a in position]
        vectors = np.asarray(embeddings, dtype=np.float32)[keep]
        ids = np.array([position[answers[i]] for i in keep], dtype=np.int32)
        meta = VoteMeta(tuple(labels), k, power, encoder, int(vectors.shape[1]), prior=prior)
        return cls(vectors, ids, meta)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def vote_many(self, queries: np.ndarray) -> list[Vote]:
        sims = normalise(queries) @ self.embeddings.T
        k = min(self.meta.k, len(self))
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return [self._tally(sims[row, top[row]], self.labels[top[row]]) for row in range(len(top))]

    def vote(self, query: np.ndarray) -> Vote:
        return self.vote_many(np.asarray(query)[None, :])[0]

    def leave_one_out(self, groups: Sequence[str], chunk: int = 512) -> list[Vote]:
        """Each stored row voted on by all the others, its own group excluded (`groups[i]`:
        the row's prompt hash, so a repeated query does not find itself): how the index
        answers a query it was not fitted on, for every row it holds. The calibration gate
        uses these as pairs beside the held-out ones (`loo_pairs`)."""
        if len(groups) != len(self):
            raise ValueError("one group per stored row")
        ids = np.unique(np.asarray(groups), return_inverse=True)[1]
        k = min(self.meta.k, max(1, len(self) - 1))
        votes: list[Vote] = []
        for start in range(0, len(self), chunk):
            sims = self.embeddings[start : start + chunk] @ self.embeddings.T
            sims[ids[start : start + chunk, None] == ids[None, :]] = -np.inf
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            votes += [self._tally(sims[r, top[r]], self.labels[top[r]]) for r in range(len(top))]
        return votes

    def loo_pairs(self, groups: Sequence[str]) -> list[dict[str, Any]]:
        """`leave_one_out` as (confidence, agreement with the row's own label) pairs."""
        return [
            {"confidence": vote.share, "agree": vote.label == self.meta.labels[label]}
            for vote, label in zip(self.leave_one_out(groups), self.labels.tolist(), strict=True)
        ]

    def _tally(self, sims: np.ndarray, labels: np.ndarray) -> Vote:
        power = self.meta.power
        sims = np.where(np.isfinite(sims), sims, -1.0)  # excluded rows (leave-one-out) weigh 0
        weights = np.clip(sims, 0.0, None) ** power if power else (sims > -1.0).astype(float)
        totals: dict[int, float] = {}
        for label, weight in zip(labels.tolist(), weights.tolist(), strict=True):
            totals[label] = totals.get(label, 0.0) + weight
        whole = sum(totals.values())
        if whole <= 0:  # every neighbour orthogonal or opposite: an even split
            whole = float(len(totals))
            totals = dict.fromkeys(totals, 1.0)
            if self.meta.prior:
                whole = math.inf  # and nothing near: no share at all
        whole += self.meta.prior
        ranking = sorted(
            ((self.meta.labels[i], w / whole) for i, w in totals.items()),
            key=lambda item: -item[1],
        )
        return Vote(ranking[0][0], ranking[0][1], tuple(ranking))

    # --- files ---------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / INDEX_FILE,
            embeddings=self.embeddings.astype(np.float16),
            labels=self.labels,
        )
        (directory / META_FILE).write_text(json.dumps(asdict(self.meta), indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> VoteIndex:
        try:
            meta_raw: dict[str, Any] = json.loads((directory / META_FILE).read_text())
            with np.load(directory / INDEX_FILE) as data:
                embeddings = data["embeddings"].astype(np.float32)
                labels = data["labels"]
            meta = VoteMeta(**{**meta_raw, "labels": tuple(meta_raw["labels"])})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VoteIndexError(f"cannot read the vote index in {directory}: {exc}") from exc
        return cls(embeddings, labels, meta)


def is_vote_dir(path: Path | str | None) -> bool:
    """True when `path` holds a vote index (a run's ``classifier/``), not a LoRA adapter."""
    return path is not None and (Path(path) / META_FILE).is_file()


def log_share(share: float) -> float:
    """The share as a log-probability (what a chat completion's logprobs carry)."""
    return math.log(share) if share > 0 else -9999.0


def query_text(messages: Sequence[Any]) -> str | None:
    """What the encoder embeds: the last user message's text (the system prompt is the same
    for every row of a task, so it would only blur the neighbours apart)."""
    for message in reversed(list(messages)):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content.strip() or None
        if isinstance(content, list):
            parts = [
                str(p.get("text") or "")
                for p in content
                if isinstance(p, dict) and p.get("type") in ("text", "input_text")
            ]
            text = " ".join(p for p in parts if p).strip()
            return text or None
        return None
    return None
