"""Per-task overrides: the ``[tasks.NAME]`` tables of the TOML config.

.. code-block:: toml

    [tasks.intents]                 # rename / merge: these requests are task "intents"
    match = ["auto-gpt-4o-mini-1a2b3c4d", "intent-v1", "prefix:You are a banking assistant"]
    quality_target = 0.9            # this task's target agreement (calibration)
    label_set = ["card_lost", "refund", "other"]
    validator = "myapp.checks:is_label"

    [tasks.auto-gpt-4o-2c3d4e5f]    # a derived task, by its own name
    exclude = true                  # never distilled: always the teacher (task_excluded)

``match`` entries are task names (derived ``auto-...`` ids or names clients send), merged
into NAME; an entry ``prefix:TEXT`` takes every request with a derived task whose system
prompt starts with TEXT (as sent, before masking). A client's own name is never taken by a
prefix, only by its name. Each name and each prefix belongs to one table, and a table's
NAME is not an entry of another (no chains), so the result never depends on the order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from proxy.tasks.identity import MAX_NAME, is_task_name

PREFIX = "prefix:"


class TaskOverride(BaseModel):
    """One ``[tasks.NAME]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: tuple[str, ...] = Field(
        (),
        description="Task names merged into this task, or `prefix:TEXT` for requests whose "
        "derived task's system prompt starts with TEXT.",
    )
    exclude: bool = Field(
        False, description="Never distilled: always the teacher (reason `task_excluded`)."
    )
    quality_target: float | None = Field(
        None, gt=0, lt=1, description="This task's target agreement (unset: target_agreement)."
    )
    label_set: tuple[str, ...] | None = Field(
        None, description="The task's closed label set, as the user gives it."
    )
    validator: str | None = Field(
        None,
        description="The trainer's answer validator for this task: `module:function` or a "
        "`distill.validators` entry point (trainer/validators.py).",
    )

    @field_validator("match")
    @classmethod
    def _entries(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        for entry in entries:
            if entry.startswith(PREFIX):
                if not entry[len(PREFIX) :].strip():
                    raise ValueError(f"match entry {entry!r}: the prefix is empty")
            elif not is_task_name(entry):
                raise ValueError(
                    f"match entry {entry!r} is neither a task name (a-z, 0-9, '.', '_', '-', "
                    f"at most {MAX_NAME}) nor `prefix:TEXT`"
                )
        return entries

    @field_validator("label_set")
    @classmethod
    def _labels(cls, labels: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if labels is None:
            return None
        cleaned = tuple(label.strip() for label in labels)
        if not cleaned or any(not label for label in cleaned):
            raise ValueError("label_set must list non-empty labels")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("label_set lists a label twice")
        return cleaned

    @field_validator("validator")
    @classmethod
    def _validator(cls, spec: str | None) -> str | None:
        if spec is not None and (not spec.strip() or any(c.isspace() for c in spec)):
            raise ValueError(f"validator {spec!r}: expected module:function or an entry point")
        return spec

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e for e in self.match if not e.startswith(PREFIX))

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(e[len(PREFIX) :] for e in self.match if e.startswith(PREFIX))


def check_overrides(tables: Mapping[str, TaskOverride]) -> dict[str, TaskOverride]:
    """The tables as a whole: valid names, each match entry in one table, no chains."""
    owner: dict[str, str] = {}
    for name, table in tables.items():
        if not is_task_name(name):
            raise ValueError(
                f"[tasks.{name}]: a task name is 1-{MAX_NAME} characters of a-z, 0-9, '.', "
                "'_', '-', starting with a letter or digit"
            )
        for entry in table.match:
            if entry in owner and owner[entry] != name:
                raise ValueError(
                    f"match entry {entry!r} is in [tasks.{owner[entry]}] and [tasks.{name}]"
                )
            owner[entry] = name
    for name in tables:
        if name in owner and owner[name] != name:
            raise ValueError(
                f"[tasks.{name}] is itself merged into [tasks.{owner[name]}]: "
                "list its entries there instead"
            )
    return dict(tables)


TaskOverrides = Annotated[dict[str, TaskOverride], AfterValidator(check_overrides)]
"""The tables checked as a whole, as `Settings.tasks` checks them (a `TypeAdapter`'s type)."""
