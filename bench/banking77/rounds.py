"""Old import path of `bench.harness.rounds` (the harness every benchmark shares)."""

from __future__ import annotations

from bench.harness.rounds import (
    FORCE_STUDENT,
    VALIDATION_BODY,
    VALIDATION_INDEX_BASE,
    LoopConfig,
    learning_phase,
    proxy_costs,
    run_round,
    teacher_spend_probe,
    validate,
)

__all__ = [
    "FORCE_STUDENT",
    "LoopConfig",
    "VALIDATION_BODY",
    "VALIDATION_INDEX_BASE",
    "learning_phase",
    "proxy_costs",
    "run_round",
    "teacher_spend_probe",
    "validate",
]
