"""Continuous loop settings: when runs start, how they run beside serving, and when a
candidate is promoted (proxy/loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class LoopSettings(BaseModel):
    """The scheduler, the training process, promotion."""

    loop_scope: Literal["task", "all"] = Field(
        "task",
        description="`task`: every task (x-distill-task, or derived) gets its own student "
        "versions, threshold, runs, promotion and rollback; a rows-triggered run trains the "
        "task with the most expected savings per CPU minute. `all`: one version for all "
        "traffic (the loop before tasks).",
    )

    train_schedule: str | None = Field(
        None,
        description="When the server starts a distillation run by itself: a cron expression "
        '("0 3 * * *", server local time) or an interval ("30m", "6h", "1d"). Unset: never.',
    )
    train_every_rows: int | None = Field(
        None,
        ge=1,
        description="Start a run as soon as this many new teacher-answered rows were logged "
        "since the last run (the first run also waits for train_min_rows). Unset: off.",
    )
    train_rows_check_interval: float = Field(
        5.0, gt=0, description="Seconds between checks of the train_every_rows trigger."
    )
    train_timeout: float = Field(
        12 * 3600.0, gt=0, description="Seconds a training run may take before it is killed."
    )
    train_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Niceness of the training process: serving on the same cores keeps priority "
        "(on a 2-core CPU a run beside traffic doubled the student's latency at 0). 0: equal.",
    )
    trainer_command: str | None = Field(
        None,
        description="Command line that runs one training run (shell-quoted; run arguments are "
        "appended). Default: this Python with `-m trainer.run`.",
    )
    promotion_margin: float = Field(
        0.02,
        ge=-1,
        le=1,
        description="A candidate is promoted only if its agreement with the teacher on the "
        "held-out split is at least the incumbent's plus this margin (a vote student refitted "
        "over a vote incumbent, which holds the incumbent's rows and newer ones: at most 0).",
    )
    regression_set: Path | None = Field(
        None,
        description="Optional JSONL of {messages, expected}: a candidate that answers fewer of "
        "them correctly than the incumbent is rejected.",
    )
    promotion_eval_concurrency: int = Field(
        4, ge=1, description="Requests in flight to vLLM while evaluating a candidate."
    )
