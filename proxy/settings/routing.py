"""Serving and routing settings: which requests the student may answer, and how many of its
answers are shadowed by the teacher."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from proxy.tasks.config import TaskOverride, check_overrides

ScorerName = Literal["mean_logprob", "min_prob", "mean_entropy"]
# Shadow rates in calibration mode. A vote student's calibration also holds the leave-one-out
# vote of every training row (within about 2 points of the next 1,000 requests in the
# Banking77 run), so half the live sample keeps it honest at half the cost.
DEFAULT_SHADOW_RATE = 0.1
VOTE_SHADOW_RATE = 0.05


class RoutingSettings(BaseModel):
    """Student or teacher, per request."""

    unsupported_features: str = Field(
        "tools,functions,images,audio",
        description="Request features sent straight to the teacher (comma-separated: "
        "tools, functions, images, audio).",
    )
    confidence_scorer: ScorerName = Field("mean_logprob", description="Confidence scorer.")
    confidence_threshold: float | None = Field(
        None,
        description="Static threshold, opt-in: serve the student when score >= threshold, with "
        "no calibration. Unset: calibration mode (target_agreement), the default.",
    )
    shadow_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Fraction of student-served requests also sent to the teacher in the "
        "background (agreement estimate, training pairs). Unset: in calibration mode 0.1, or "
        "0.05 while a vote student serves (its calibration also holds every training row's "
        "leave-one-out vote); else 0.",
    )
    shadow_budget_per_hour: int = Field(
        1000, ge=0, description="Most shadow teacher calls per hour."
    )
    tasks: dict[str, TaskOverride] = Field(
        default_factory=dict,
        description="Per-task overrides, TOML `[tasks.NAME]`: `match` (task names or "
        "`prefix:TEXT` of a system prompt, renamed or merged into NAME), `exclude` (always the "
        "teacher, reason `task_excluded`), `quality_target`, `label_set`, `validator`; env: "
        'JSON `{"NAME": {"exclude": true}}`. docs/tasks.md.',
    )

    @field_validator("tasks")
    @classmethod
    def _tasks_as_a_whole(cls, tables: dict[str, TaskOverride]) -> dict[str, TaskOverride]:
        return check_overrides(tables)

    @property
    def unsupported(self) -> frozenset[str]:
        return frozenset(f.strip() for f in self.unsupported_features.split(",") if f.strip())

    def excluded_tasks(self) -> tuple[str, ...]:
        """The tasks never distilled (``exclude = true``): also never in a snapshot."""
        return tuple(sorted(name for name, table in self.tasks.items() if table.exclude))

    @property
    def calibration_mode(self) -> bool:
        return self.confidence_threshold is None

    @property
    def effective_shadow_rate(self) -> float:
        """The shadow rate while a generative student serves."""
        return self.shadow_rate_for("lora")

    def shadow_rate_for(self, kind: str) -> float:
        """The shadow rate while a student of `kind` serves (see shadow_rate)."""
        if self.shadow_rate is not None:
            return self.shadow_rate
        if not self.calibration_mode:
            return 0.0
        return VOTE_SHADOW_RATE if kind == "vote" else DEFAULT_SHADOW_RATE
