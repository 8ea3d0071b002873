"""Token log-probabilities for a label answer, shaped like OpenAI's `logprobs.content`.

The answer is split by the student's tokenizer. At each position the chosen token is
sharp; where a confusable label branches off (same tokens so far, a different next
token) that label's token gets real probability mass; when the teacher answered a
wrong label, the gold label's branch gets the most of it (the teacher was torn). The
remaining top-k slots are filled with low-probability tokens from the label vocabulary.
"""

from __future__ import annotations

import math
from typing import Any

from bench.harness.hashing import unit_hash
from bench.harness.tokens import Tokenizer

# The first replay teacher's (Banking77's) generic fillers; other tasks pass their own.
GENERIC_FILLERS = ("_", "\n", " ", "The", "I", "card", "top", "transfer", "account", "payment")
BRANCH_SHARE = 0.9
FILLER_DECAY = 0.45


def _branches(prefix: list[str], chosen: str, rivals: list[list[str]]) -> list[str]:
    """Next tokens of rival labels that share the prefix but continue differently."""
    found: list[str] = []
    depth = len(prefix)
    for tokens in rivals:
        branches_here = len(tokens) > depth and tokens[:depth] == prefix
        if branches_here and tokens[depth] != chosen and tokens[depth] not in found:
            found.append(tokens[depth])
    return found


def _geometric(mass: float, count: int, ratio: float) -> list[float]:
    if count == 0:
        return []
    weights = [ratio**j for j in range(count)]
    total = sum(weights)
    return [mass * w / total for w in weights]


def _position(
    chosen: str, branches: list[str], torn: bool, fillers: list[str], top_k: int, u: float
) -> list[tuple[str, float]]:
    """The (token, probability) list at one position, most likely first, top_k long."""
    if not branches:
        p_top = 0.97 + 0.029 * u
    elif torn:
        # Stays above the gold token's share (at most BRANCH_SHARE * 0.5): greedy-consistent.
        p_top = 0.50 + 0.20 * u
    else:
        p_top = 0.70 + 0.28 * u
    rest = 1.0 - p_top
    branch_mass = BRANCH_SHARE * rest if branches else 0.0
    # A torn teacher puts most of the doubt on the gold label's token (branches[0]).
    ratio = 0.25 if torn else 0.5
    dist = [(chosen, p_top)] + list(
        zip(branches, _geometric(branch_mass, len(branches), ratio), strict=True)
    )
    taken = {tok for tok, _ in dist}
    free = [tok for tok in fillers if tok not in taken][: max(0, top_k - len(dist))]
    dist += list(zip(free, _geometric(rest - branch_mass, len(free), FILLER_DECAY), strict=True))
    dist.sort(key=lambda item: -item[1])
    return dist[: max(top_k, 1)]


def _entry(token: str, prob: float) -> dict[str, Any]:
    return {"token": token, "logprob": math.log(prob), "bytes": list(token.encode("utf-8"))}


def filler_pool(
    labels: list[str], tokenizer: Tokenizer, generic: tuple[str, ...] = GENERIC_FILLERS
) -> list[str]:
    """Distinct low-probability candidates: generic tokens, then each label's first token."""
    pool: list[str] = list(generic)
    for label in labels:
        first = tokenizer.split(label)[0]
        if first not in pool:
            pool.append(first)
    return pool


def label_logprobs(
    label: str,
    rivals: list[str],
    tokenizer: Tokenizer,
    top_k: int,
    key: str,
    fillers: list[str],
    torn: bool = False,
) -> list[dict[str, Any]]:
    """`logprobs.content` for the answer `label`; `torn`: rivals[0] is the missed gold label."""
    tokens = tokenizer.split(label)
    rival_tokens = [tokenizer.split(r) for r in rivals]
    gold_tokens = rival_tokens[0] if torn and rival_tokens else None
    content: list[dict[str, Any]] = []
    for i, chosen in enumerate(tokens):
        branches = _branches(tokens[:i], chosen, rival_tokens)
        gold_here = (
            gold_tokens is not None
            and bool(branches)
            and (
                len(gold_tokens) > i
                and gold_tokens[:i] == tokens[:i]
                and gold_tokens[i] == branches[0]
            )
        )
        dist = _position(chosen, branches, gold_here, fillers, top_k, unit_hash(key, i))
        entry = _entry(chosen, dist[0][1] if dist[0][0] == chosen else _prob_of(chosen, dist))
        entry["top_logprobs"] = [_entry(tok, p) for tok, p in dist] if top_k > 0 else []
        content.append(entry)
    return content


def _prob_of(token: str, dist: list[tuple[str, float]]) -> float:
    for tok, p in dist:
        if tok == token:
            return p
    raise ValueError(f"{token!r} missing from its own distribution")


def text_logprobs(
    tokens: list[str], top_k: int, key: str, fillers: list[str], low: float = 0.6
) -> list[dict[str, Any]]:
    """`logprobs.content` for a free-text or JSON answer already split into `tokens`.

    No rival answer is known token by token, so each position is the chosen token at a
    hashed probability in [low, 1) with fillers sharing the rest: a confident but not
    certain teacher, the same on every rerun.
    """
    content: list[dict[str, Any]] = []
    for i, chosen in enumerate(tokens):
        p_top = low + (0.999 - low) * unit_hash(key, "text", i)
        free = [tok for tok in fillers if tok != chosen][: max(0, top_k - 1)]
        dist = [(chosen, p_top)] + list(
            zip(free, _geometric(1.0 - p_top, len(free), FILLER_DECAY), strict=True)
        )
        dist.sort(key=lambda item: -item[1])
        entry = _entry(chosen, p_top)
        entry["top_logprobs"] = (
            [_entry(tok, p) for tok, p in dist[: max(top_k, 1)]] if top_k else []
        )
        content.append(entry)
    return content
