"""Naming and describing a student version: from a finished run (a candidate) or from its
`student_versions` row (a restart). One place decides what a vote or LoRA version serves
with: its model name, its scorer, its pruned system prompt."""

from __future__ import annotations

from proxy.serving.student_state import StudentVersion

CLOSED_SET_SCORER = "sequence_prob"


def adapter_name(run_id: str) -> str:
    return f"distill-{run_id}"


def vote_name(run_id: str) -> str:
    return f"vote-{run_id}"


def describe(
    name: str,
    run_id: str | None,
    *,
    vote: bool,
    closed_set: tuple[str, ...] | None,
    prompt_prefix: str | None,
    calibration_mode: bool,
    threshold: float | None = None,
) -> StudentVersion:
    """A vote version is always scored by its vote share (`sequence_prob` of its one label
    token) and sees the whole conversation; a LoRA version of a closed set is scored as a
    choice in calibration mode, and strips the system prompt it learned."""
    if vote:
        return StudentVersion(
            name=name, version=run_id or "base", threshold=threshold,
            scorer=CLOSED_SET_SCORER, closed_set=closed_set, kind="vote",
        )  # fmt: skip
    scorer = CLOSED_SET_SCORER if closed_set and calibration_mode else None
    return StudentVersion(
        name=name, version=run_id or "base", threshold=threshold, scorer=scorer,
        prompt_prefix=prompt_prefix, closed_set=closed_set,
    )  # fmt: skip
