"""The sentence encoder's vLLM, as the trainer and the proxy both call it.

The encoder runs with the token pooler (``--runner pooling --pooler-config
'{"task": "token_embed"}'``) and is asked for raw hidden states (``use_activation: false``)
at ``POST /pooling``: one vector per token. The span student (`trainer/spans.py`) reads those
per token; the vote student's sentence vector is their mean, L2-normalised, which is what the
model's own mean pooler computes (all-MiniLM-L6-v2: cosine 0.999999 with `/v1/embeddings`
under the sentence pooler). One server thus serves both students; vLLM serves one pooling
task per process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

BATCH = 64
TIMEOUT_S = 120.0
POOLING_PATH = "/pooling"
TOKEN_POOLER = '{"task": "token_embed"}'
"""The encoder vLLM's ``--pooler-config``."""


class EncoderError(RuntimeError):
    """The encoder server could not embed the texts."""


def pooling_body(model: str, texts: Sequence[str]) -> dict[str, Any]:
    return {"model": model, "input": list(texts), "use_activation": False}


def pooling_url(base_url: str) -> str:
    """`/pooling` sits at the server root, beside (not under) the OpenAI ``/v1``."""
    root = base_url.rstrip("/")
    return (root[: -len("/v1")] if root.endswith("/v1") else root) + POOLING_PATH


def parse_states(payload: Any) -> list[np.ndarray]:
    """Per text, its tokens' hidden states (tokens x dim); raises `ValueError` on a payload
    of another shape."""
    try:
        data = sorted(payload["data"], key=lambda d: d["index"])
        states = [np.asarray(d["data"], dtype=np.float32) for d in data]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"unexpected pooling payload: {exc}") from exc
    if any(s.ndim != 2 or s.shape[0] == 0 for s in states):
        raise ValueError("the encoder returned no per-token states (is its pooler token_embed?)")
    return states


def mean_pool(states: Sequence[np.ndarray]) -> np.ndarray:
    """Sentence vectors (texts x dim, unit length) from per-token states."""
    means = np.stack([s.mean(axis=0) for s in states])
    return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Encoder:
    url: str
    """Base URL ending in /v1."""
    model: str
    tokenizer: str | None = None
    """The encoder's ``tokenizer.json`` (token offsets for the span student); None: span
    students cannot be fitted."""

    def embed(self, texts: Sequence[str], client: httpx.Client | None = None) -> np.ndarray:
        """Sentence vectors, one row per text."""
        states = self.token_states(texts, client)
        return mean_pool(states) if states else np.zeros((0, 0), dtype=np.float32)

    def token_states(
        self, texts: Sequence[str], client: httpx.Client | None = None
    ) -> list[np.ndarray]:
        own = client is None
        http = client or httpx.Client(timeout=TIMEOUT_S, trust_env=False)
        try:
            out: list[np.ndarray] = []
            for start in range(0, len(texts), BATCH):
                out += self._batch(http, list(texts[start : start + BATCH]))
        finally:
            if own:
                http.close()
        return out

    def _batch(self, http: httpx.Client, texts: list[str]) -> list[np.ndarray]:
        try:
            response = http.post(pooling_url(self.url), json=pooling_body(self.model, texts))
            response.raise_for_status()
            return parse_states(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise EncoderError(f"embedding {len(texts)} texts at {self.url} failed: {exc}") from exc
