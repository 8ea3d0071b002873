"""The vote student's index: a closed-set task answered by a nearest-neighbour vote over
sentence embeddings of the teacher-labelled queries.

Fitting is storing: the training rows' query embeddings (L2-normalised) and their labels.
A query's answer is the label with the largest similarity-weighted vote among its `k`
nearest stored rows; its confidence is that label's share of the vote (0..1; the vote
counts a small `prior` weight for no label, so a query far from every row has a low
share), which the calibration gate turns into a threshold like any other score. With
`head_weight` > 0 a linear softmax head fitted on the same vectors (`trainer/head.py`)
votes too: a label's confidence is (1 - w) x its vote share + w x the head's probability.
NumPy only: the proxy serves with this module and the gate measures with it, so both
compute the same vote.

On disk (a directory, the run's ``classifier/``): ``index.npz`` (``embeddings`` float16,
``labels`` int32, the head's ``head_weights`` and ``head_bias`` when it has one) and
``vote.json`` (label names, k, weighting, head weight, encoder name, dimension).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.head import LinearHead, out_of_fold

INDEX_FILE = "index.npz"
META_FILE = "vote.json"
LOO_FILE = "loo_pairs.json"
VOTE_DIR = "classifier"  # in a run directory, where a LoRA run has adapter/
KIND = "vote"
RANKED = 10  # labels a vote lists (with the head every label has some probability)


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
    head_weight: float = 0.0
    """Weight of the linear head's probability in a label's confidence (0: no head; an
    index written before the head existed loads with 0)."""


@dataclass(frozen=True)
class Vote:
    label: str
    share: float
    """The winning label's share of the weighted vote (the confidence)."""
    ranking: tuple[tuple[str, float], ...]
    """The labels with a share (at most `RANKED`), best first."""


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


class VoteIndex:
    def __init__(
        self,
        embeddings: np.ndarray,
        labels: np.ndarray,
        meta: VoteMeta,
        head: LinearHead | None = None,
    ) -> None:
        if embeddings.shape[0] != labels.shape[0]:
            raise ValueError("one label per embedding")
        if embeddings.shape[0] == 0:
            raise ValueError("an empty index cannot vote")
        if (head is None) != (meta.head_weight == 0):
            raise ValueError("a head weight needs a head, and a head needs a weight")
        self.embeddings = normalise(embeddings)
        self.labels = labels.astype(np.int32)
        self.meta = meta
        self.head = head

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
        head_weight: float = 0.0,
    ) -> VoteIndex:
        """Stores the rows whose answer is one of `labels` (others cannot be voted for) and,
        with `head_weight` > 0, fits the linear head on them."""
        position = {label: i for i, label in enumerate(labels)}
        keep = [i for i, a in enumerate(answers) if a in position]
        vectors = normalise(np.asarray(embeddings, dtype=np.float32)[keep])
        ids = np.array([position[answers[i]] for i in keep], dtype=np.int32)
        meta = VoteMeta(
            tuple(labels), k, power, encoder, int(vectors.shape[1]), prior=prior,
            head_weight=head_weight if len(keep) else 0.0,
        )  # fmt: skip
        head = LinearHead.fit(vectors, ids, len(labels)) if meta.head_weight else None
        return cls(vectors, ids, meta, head)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def vote_many(self, queries: np.ndarray) -> list[Vote]:
        queries = normalise(queries)
        sims = queries @ self.embeddings.T
        k = min(self.meta.k, len(self))
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        probs = self.head.probs(queries) if self.head is not None else None
        return [
            self._tally(sims[r, top[r]], self.labels[top[r]], None if probs is None else probs[r])
            for r in range(len(top))
        ]

    def vote(self, query: np.ndarray) -> Vote:
        return self.vote_many(np.asarray(query)[None, :])[0]

    def leave_one_out(self, groups: Sequence[str], chunk: int = 512) -> list[Vote]:
        """Each stored row voted on by all the others, its own group excluded (`groups[i]`:
        the row's prompt hash, so a repeated query does not find itself): how the index
        answers a query it was not fitted on, for every row it holds. The calibration gate
        uses these as pairs beside the held-out ones (`loo_pairs`). The head's part comes
        from heads fitted without the row's fold (`trainer.head.out_of_fold`)."""
        if len(groups) != len(self):
            raise ValueError("one group per stored row")
        ids = np.unique(np.asarray(groups), return_inverse=True)[1]
        k = min(self.meta.k, max(1, len(self) - 1))
        probs = None
        if self.head is not None:
            probs = out_of_fold(self.embeddings, self.labels, len(self.meta.labels), groups)
        votes: list[Vote] = []
        for start in range(0, len(self), chunk):
            sims = self.embeddings[start : start + chunk] @ self.embeddings.T
            sims[ids[start : start + chunk, None] == ids[None, :]] = -np.inf
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            for r in range(len(top)):
                row_probs = None if probs is None else probs[start + r]
                votes.append(self._tally(sims[r, top[r]], self.labels[top[r]], row_probs))
        return votes

    def loo_pairs(self, groups: Sequence[str]) -> list[dict[str, Any]]:
        """`leave_one_out` as (confidence, agreement with the row's own label) pairs."""
        return [
            {"confidence": vote.share, "agree": vote.label == self.meta.labels[label]}
            for vote, label in zip(self.leave_one_out(groups), self.labels.tolist(), strict=True)
        ]

    def _tally(self, sims: np.ndarray, labels: np.ndarray, probs: np.ndarray | None) -> Vote:
        power = self.meta.power
        sims = np.where(np.isfinite(sims), sims, -1.0)  # excluded rows (leave-one-out) weigh 0
        weights = np.clip(sims, 0.0, None) ** power if power else (sims > -1.0).astype(float)
        shares = np.zeros(len(self.meta.labels))
        np.add.at(shares, labels, weights)
        whole = float(shares.sum())
        if whole <= 0:  # every neighbour orthogonal or opposite: an even split
            shares[labels] = 1.0
            whole = math.inf if self.meta.prior else float(len(np.unique(labels)))
        shares /= whole + self.meta.prior  # and with a prior, nothing near: no share at all
        if probs is not None:
            shares = (1.0 - self.meta.head_weight) * shares + self.meta.head_weight * probs
        order = np.argsort(-shares, kind="stable")[:RANKED]
        ranked = [int(i) for i in order if shares[i] > 0] or [int(labels[0])]
        ranking = tuple((self.meta.labels[i], float(shares[i])) for i in ranked)
        return Vote(ranking[0][0], ranking[0][1], ranking)

    # --- files ---------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "embeddings": self.embeddings.astype(np.float16), "labels": self.labels
        }  # fmt: skip
        if self.head is not None:
            arrays |= {"head_weights": self.head.weights, "head_bias": self.head.bias}
        np.savez(directory / INDEX_FILE, **arrays)
        (directory / META_FILE).write_text(json.dumps(asdict(self.meta), indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> VoteIndex:
        try:
            meta_raw: dict[str, Any] = json.loads((directory / META_FILE).read_text())
            with np.load(directory / INDEX_FILE) as data:
                embeddings = data["embeddings"].astype(np.float32)
                labels = data["labels"]
                head = None
                if "head_weights" in data:
                    head = LinearHead(data["head_weights"], data["head_bias"])
            meta = VoteMeta(**{**meta_raw, "labels": tuple(meta_raw["labels"])})
            return cls(embeddings, labels, meta, head)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VoteIndexError(f"cannot read the vote index in {directory}: {exc}") from exc


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
