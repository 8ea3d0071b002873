"""Fitting the vote student of a closed-set task: embed the training queries through the
encoder's vLLM (`trainer/encoder.py`, the server that embeds queries at serving time, so train
and serve vectors match) and store them with the teacher's labels (`trainer/vote.py`).

Embeddings are cached per encoder in ``<runs dir>/.vote-cache/`` by prompt hash, so a round
embeds only the rows that arrived since the last one: a refit takes seconds.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainer.agreement import normalize_answer
from trainer.config import TrainConfig
from trainer.dataset import DatasetSelection, TrainRow
from trainer.encoder import Encoder
from trainer.vote import LOO_FILE, VoteIndex, query_text

log = logging.getLogger("trainer.vote")


class EmbeddingCache:
    """Vectors by prompt hash for one encoder, in one ``.npz`` (rewritten whole: small)."""

    def __init__(self, directory: Path, encoder: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", encoder)
        self.path = directory / f"{safe}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.is_file():
            try:
                with np.load(self.path) as data:
                    self.vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable embedding cache %s: %s", self.path, exc)

    def save(self) -> None:
        if not self.vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.vectors))
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, keys=keys, vectors=np.stack(list(self.vectors.values())).astype(np.float16))
        tmp.replace(self.path)


def embed_rows(
    rows: Sequence[TrainRow], encoder: Encoder, cache: EmbeddingCache
) -> tuple[np.ndarray, list[int], int]:
    """(vectors of the rows that have a query text, their positions, newly embedded)."""
    texts = {i: t for i, r in enumerate(rows) if (t := query_text(r.messages))}
    keys = {i: f"{rows[i].prompt_hash}" for i in texts}
    missing = [i for i in texts if keys[i] not in cache.vectors]
    if missing:
        fresh = encoder.embed([texts[i] for i in missing])
        for i, vector in zip(missing, fresh, strict=True):
            cache.vectors[keys[i]] = vector
    positions = sorted(texts)
    if not positions:
        return np.zeros((0, 0), dtype=np.float32), [], 0
    vectors = np.stack([cache.vectors[keys[i]] for i in positions]).astype(np.float32)
    return vectors, positions, len(missing)


def fit_vote(
    selection: DatasetSelection,
    cfg: TrainConfig,
    encoder: Encoder,
    out_dir: Path,
    cache_dir: Path,
) -> dict[str, object]:
    """Writes the vote index to `out_dir`; returns what the report says about the fit."""
    if not selection.closed_set:
        raise ValueError("the vote student needs a closed-set task")
    t0 = time.monotonic()
    cache = EmbeddingCache(cache_dir, encoder.model)
    # The index holds the calibration split too: a vote's calibration evidence is every
    # stored row's leave-one-out vote (as good as held out for a nearest-neighbour vote),
    # so those rows would only be data the vote never sees. The eval split stays out: the
    # gate compares candidate and incumbent on it.
    rows = [*selection.train, *selection.calibration]
    vectors, positions, fresh = embed_rows(rows, encoder, cache)
    if not positions:
        raise ValueError("no training row has a user message to embed")
    cache.save()
    # Each answer in the label's recorded spelling (the closed set keeps the most common one).
    spelling = {normalize_answer(label): label for label in selection.closed_set}
    answers = [spelling.get(normalize_answer(rows[i].completion), "") for i in positions]
    kept = [j for j, answer in enumerate(answers) if answer]  # off-set answers cannot vote
    index = VoteIndex.fit(
        vectors[kept], [answers[j] for j in kept], selection.closed_set, k=cfg.vote_k,
        power=cfg.vote_power, encoder=encoder.model, prior=cfg.vote_prior,
        head_weight=cfg.vote_head_weight,
    )  # fmt: skip
    index.save(out_dir)
    # Every stored row voted on by the others: calibration pairs as if it were held out.
    loo = index.loo_pairs([rows[positions[j]].prompt_hash for j in kept])
    (out_dir / LOO_FILE).write_text(json.dumps({"pairs": loo}))
    seconds = time.monotonic() - t0
    log.info(
        "vote index: %d rows (%d newly embedded), %d labels, k=%d, in %.1f s",
        len(index), fresh, len(selection.closed_set), cfg.vote_k, seconds,
    )  # fmt: skip
    return {
        "kind": "vote",
        "rows": len(index),
        "embedded": fresh,
        "k": cfg.vote_k,
        "power": cfg.vote_power,
        "head_weight": index.meta.head_weight,
        "encoder": encoder.model,
        "fit_seconds": round(seconds, 3),
        "loo_agreement": round(sum(p["agree"] for p in loo) / len(loo), 4) if loo else None,
    }
