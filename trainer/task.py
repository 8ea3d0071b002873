"""What the selected rows say about the task: a shared system prompt worth pruning and a
closed answer set worth constraining decoding to. Pure python (the proxy reads the results
from the run report / adapter metadata, never recomputes them).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainer.agreement import normalize_answer

SYSTEM_ROLES = ("system", "developer")
# A closed-set answer is a label, not prose.
CLOSED_SET_MAX_WORDS = 8
CLOSED_SET_MAX_CHARS = 100
# This share of the answers must be labels the teacher gave more than once; otherwise every
# small free-text dataset would look "closed" (n rows, n distinct answers). A share, not a
# mean count per label: 200 rows of a 151-intent task (CLINC150) have ~1.6 rows a label but
# ~70% of them repeat, while free text repeats almost never.
CLOSED_SET_MIN_REPEATED_SHARE = 0.5

Message = dict[str, Any]


@dataclass(frozen=True)
class PromptPrefix:
    """A system message shared verbatim by (nearly) every row of the task."""

    text: str
    sha256: str
    share: float
    pruned: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "sha256": self.sha256,
            "share": round(self.share, 4),
            "chars": len(self.text),
            "pruned": self.pruned,
        }


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def leading_system_text(messages: Sequence[Message]) -> str | None:
    if messages and messages[0].get("role") in SYSTEM_ROLES:
        content = messages[0].get("content")
        return content if isinstance(content, str) else None
    return None


def detect_prompt_prefix(
    conversations: Sequence[Sequence[Message]], min_share: float, min_chars: int, prune: bool
) -> PromptPrefix | None:
    """The most common leading system message if it is long and shared by >= min_share."""
    if not conversations:
        return None
    counts = Counter(t for c in conversations if (t := leading_system_text(c)) is not None)
    if not counts:
        return None
    text, count = counts.most_common(1)[0]
    share = count / len(conversations)
    if share < min_share or len(text) <= min_chars:
        return None
    return PromptPrefix(text=text, sha256=sha256_text(text), share=share, pruned=prune)


def strip_prefix(messages: Sequence[Message], prefix: PromptPrefix | None) -> list[Message]:
    """The messages the student sees: without the pruned system message, when it is there
    verbatim (exactly what the proxy does at serving time)."""
    if prefix is not None and prefix.pruned and leading_system_text(messages) == prefix.text:
        return list(messages[1:])
    return list(messages)


def detect_closed_set(answers: Sequence[str], max_labels: int) -> list[str] | None:
    """The label set when the teacher's answers fall in a small set of short strings.

    Labels are compared normalised; each label is recorded in its most frequent raw
    (stripped) spelling, which is what the structured-choice constraint will emit.
    """
    if max_labels <= 0 or not answers:
        return None
    stripped = [a.strip() for a in answers]
    if any(
        not a or len(a) > CLOSED_SET_MAX_CHARS or len(a.split()) > CLOSED_SET_MAX_WORDS
        for a in stripped
    ):
        return None
    spellings: dict[str, Counter[str]] = {}
    for answer in stripped:
        spellings.setdefault(normalize_answer(answer), Counter())[answer] += 1
    repeated = sum(n for c in spellings.values() if (n := sum(c.values())) >= 2)
    if len(spellings) > max_labels or repeated / len(answers) < CLOSED_SET_MIN_REPEATED_SHARE:
        return None
    return sorted(counter.most_common(1)[0][0] for counter in spellings.values())
