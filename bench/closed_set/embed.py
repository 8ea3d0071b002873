"""Embeddings of the Banking77 queries for offline comparisons, cached on disk.

Mean-pooled, normalised all-MiniLM-L6-v2 vectors computed with transformers (the model
the proxy serves through vLLM's pooling runner); the cache is keyed by the model
directory and the query list, so every comparison reads the same vectors.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"


def embed_texts(model_dir: Path, texts: Sequence[str], batch: int = 64) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            enc = tokenizer(
                list(texts[start : start + batch]),
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out).astype(np.float32)


def cached_embeddings(model_dir: Path, texts: Sequence[str]) -> tuple[np.ndarray, float]:
    """(vectors, seconds spent embedding: 0 on a cache hit)."""
    key = hashlib.sha256(("\n".join(texts) + str(model_dir.resolve())).encode()).hexdigest()[:16]
    path = CACHE / f"emb-{key}.npy"
    if path.is_file():
        return np.load(path), 0.0
    t0 = time.perf_counter()
    vectors = embed_texts(model_dir, texts)
    seconds = time.perf_counter() - t0
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors, seconds
