"""`TrainRow`: one selected request, the unit `trainer.dataset` selects and the filters of
`trainer.validators` judge (its own module so that neither imports the other's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class TrainRow:
    """One selected request: the conversation as the client sent it and the teacher answer."""

    id: str
    prompt_hash: str
    created_at: datetime | None
    messages: tuple[dict[str, Any], ...]
    completion: str
    teacher_logprobs: tuple[dict[str, Any], ...] | None
    shadow: bool
    gold: bool = False  # the label comes from a user's feedback (trainer/feedback.py)
    teacher_answer: str | None = None  # the teacher's own answer, when gold
