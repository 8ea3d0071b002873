"""Aligning the teacher's top-k logprobs with the student's tokens (soft-label targets).

The teacher's tokenizer is unknown and usually differs from the student's, so a teacher
position becomes a soft target for a student position only when all of this holds:

1. Text prefix: the teacher's generated tokens before it concatenate to exactly the text the
   student's completion tokens before the aligned student token decode to (same context), and
   the logged teacher tokens agree with the teacher answer the student is trained on up to the
   end of this token.
2. Same token: the teacher token spans exactly one student token (its end is a student token
   boundary too) and, looked up in the student vocabulary, the teacher's token string is that
   very student token id.
3. Candidates: every top-k candidate string encodes to exactly one student token (candidates
   that encode to the same id are merged by summing probabilities).

Everything else is skipped and counted by reason: ``text_mismatch`` (logged tokens differ from
the answer text), ``boundary`` (token boundaries differ, e.g. the student merges two teacher
tokens), ``token_mismatch`` (same span, different student token), ``multi_token_candidate``,
``no_top_logprobs``, ``truncated`` (beyond the student's sequence). Student completion
positions without a target (e.g. the end-of-turn tokens of the chat template) train on the
hard label only. No torch here; a tokenizer object (`encode`/`decode`) is all it needs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

SKIP_REASONS = (
    "text_mismatch",
    "boundary",
    "token_mismatch",
    "multi_token_candidate",
    "no_top_logprobs",
    "truncated",
)


class Tokenizer(Protocol):
    # Loose signatures: transformers' tokenizers accept (and return) more than we use.
    def encode(self, text: str, add_special_tokens: bool = ..., **kw: Any) -> Any: ...

    def decode(self, token_ids: Any, skip_special_tokens: bool = ..., **kw: Any) -> Any: ...


@dataclass
class SoftTargets:
    """Soft-label targets for one completion (indices are completion-relative)."""

    positions: list[int] = field(default_factory=list)
    candidate_ids: list[list[int]] = field(default_factory=list)
    candidate_logprobs: list[list[float]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def used(self) -> int:
        return len(self.positions)


class TokenMapper:
    """Teacher token string -> the single student token id it encodes to (None otherwise).
    Cached per instance: the same strings recur across rows."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._cache: dict[str, int | None] = {}

    def single_id(self, text: str) -> int | None:
        if text not in self._cache:
            ids = self._tokenizer.encode(text, add_special_tokens=False) if text else []
            self._cache[text] = ids[0] if len(ids) == 1 else None
        return self._cache[text]


def student_boundaries(
    tokenizer: Tokenizer, completion_ids: Sequence[int], text: str
) -> dict[int, int]:
    """Char offset in `text` -> index of the student token starting there, for every
    prefix of the student's completion tokens that decodes to a prefix of `text`."""
    starts: dict[int, int] = {}
    for i in range(len(completion_ids) + 1):
        decoded = tokenizer.decode(completion_ids[:i], skip_special_tokens=False)
        if not text.startswith(decoded):
            if len(decoded) >= len(text):
                break  # past the answer (end-of-turn tokens): no more boundaries inside it
            continue  # e.g. half of a multi-byte character
        starts.setdefault(len(decoded), i)
    return starts


def align_soft_labels(
    mapper: TokenMapper,
    tokenizer: Tokenizer,
    completion_ids: Sequence[int],
    completion_text: str,
    teacher_content: Sequence[dict[str, Any]],
) -> SoftTargets:
    """Soft targets for the student completion `completion_ids` (tokens of `completion_text`
    followed by whatever the chat template appends) from the teacher's logprobs content."""
    out = SoftTargets()
    starts = student_boundaries(tokenizer, completion_ids, completion_text)
    offset = 0
    prefix_ok = True  # every teacher token so far matched the answer text
    for entry in teacher_content:
        token = str(entry.get("token", ""))
        start, offset = offset, offset + len(token)
        prefix_ok = prefix_ok and completion_text[start:offset] == token
        reason = (
            _check_position(start, offset, starts, completion_ids) if prefix_ok else "text_mismatch"
        )
        if reason is None:
            reason = _add_target(out, mapper, entry, starts[start], completion_ids)
        if reason is not None:
            out.skipped[reason] += 1
    return out


def _check_position(
    start: int, end: int, starts: dict[int, int], completion_ids: Sequence[int]
) -> str | None:
    if start not in starts or end not in starts or starts[end] != starts[start] + 1:
        return "boundary"
    if starts[start] >= len(completion_ids):
        return "truncated"
    return None


def _add_target(
    out: SoftTargets,
    mapper: TokenMapper,
    entry: dict[str, Any],
    student_index: int,
    completion_ids: Sequence[int],
) -> str | None:
    if mapper.single_id(str(entry["token"])) != completion_ids[student_index]:
        return "token_mismatch"
    candidates = entry.get("top_logprobs") or []
    if not candidates:
        return "no_top_logprobs"
    merged: dict[int, float] = {}
    for candidate in candidates:
        cid = mapper.single_id(str(candidate.get("token", "")))
        logprob = candidate.get("logprob")
        if cid is None or not isinstance(logprob, int | float):
            return "multi_token_candidate"
        merged[cid] = _logaddexp(merged[cid], float(logprob)) if cid in merged else float(logprob)
    out.positions.append(student_index)
    out.candidate_ids.append(list(merged))
    out.candidate_logprobs.append(list(merged.values()))
    return None


def _logaddexp(a: float, b: float) -> float:
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))
