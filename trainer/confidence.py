"""Named confidence scorers over the student's token log-probabilities.

Each scorer takes OpenAI's ``choices[i].logprobs.content`` list
(``[{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]``) and returns a
float where HIGHER means MORE confident, so one rule serves all of them:
the student is served when ``score >= threshold``.

- ``mean_logprob`` (default): mean log-probability of the generated tokens (<= 0).
- ``min_prob``: probability of the least likely generated token (0..1); one
  shaky token is enough to doubt a short answer such as a label.
- ``mean_entropy``: minus the mean entropy (nats) of the top-k distributions,
  renormalised over the returned candidates (<= 0); flat distributions mean the
  model hesitated even where it picked the right token.

An empty answer scores ``-inf``: nothing was said, nothing can be trusted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

Scorer = Callable[[Sequence[dict[str, Any]]], float]


def _logprobs(content: Sequence[dict[str, Any]]) -> list[float]:
    return [float(t["logprob"]) for t in content if t.get("logprob") is not None]


def mean_logprob(content: Sequence[dict[str, Any]]) -> float:
    values = _logprobs(content)
    return sum(values) / len(values) if values else -math.inf


def min_prob(content: Sequence[dict[str, Any]]) -> float:
    values = _logprobs(content)
    return math.exp(min(values)) if values else -math.inf


def _entropy(candidates: Sequence[dict[str, Any]]) -> float:
    probs = [math.exp(float(c["logprob"])) for c in candidates if c.get("logprob") is not None]
    total = sum(probs)
    if total <= 0:
        return 0.0
    return -sum((p / total) * math.log(p / total) for p in probs if p > 0)


def mean_entropy(content: Sequence[dict[str, Any]]) -> float:
    entropies = [_entropy(t.get("top_logprobs") or []) for t in content]
    return -sum(entropies) / len(entropies) if entropies else -math.inf


def sequence_prob(content: Sequence[dict[str, Any]]) -> float:
    """Probability of the whole answer; used for closed-set (choice) answers."""
    values = _logprobs(content)
    return math.exp(sum(values)) if values else -math.inf


SCORERS: dict[str, Scorer] = {
    "mean_logprob": mean_logprob,
    "min_prob": min_prob,
    "mean_entropy": mean_entropy,
    "sequence_prob": sequence_prob,
}


def score(name: str, content: Sequence[dict[str, Any]]) -> float:
    try:
        return SCORERS[name](content)
    except KeyError:
        raise ValueError(f"unknown confidence scorer {name!r}; known: {sorted(SCORERS)}") from None


def score_response(name: str, response: dict[str, Any]) -> float:
    """Scores a whole chat completion: the least confident of its choices."""
    scores = []
    for choice in response.get("choices") or []:
        content = (choice.get("logprobs") or {}).get("content") or []
        scores.append(score(name, content))
    return min(scores) if scores else -math.inf
