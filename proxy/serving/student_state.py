"""Which student version serves now. Promotion swaps `ActiveStudent.current` in one
assignment, so a request reads one consistent version for its whole life."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StudentVersion:
    name: str
    """Model name sent to vLLM: the base model's served name or a LoRA adapter name."""
    version: str = "base"
    threshold: float | None = None
    """Calibrated threshold (calibration mode); None means not calibrated yet."""
    scorer: str | None = None
    """Scorer the threshold was calibrated for (None: the configured scorer)."""
    prompt_prefix: str | None = None
    """System message learned into the adapter and stripped from the student's input."""
    closed_set: tuple[str, ...] | None = None
    """Answer set of a closed-set task, enforced with vLLM's choice constraint."""


class ActiveStudent:
    def __init__(self, initial: StudentVersion) -> None:
        self.current = initial
        self.previous: StudentVersion | None = None

    def swap(self, new: StudentVersion) -> StudentVersion:
        old = self.current
        self.previous = old
        self.current = new
        return old

    def update(self, new: StudentVersion) -> None:
        """Replaces the current version's metadata (e.g. a new threshold) without a swap."""
        self.current = new
