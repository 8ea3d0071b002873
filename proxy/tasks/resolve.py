"""The task of one request: the client's name or the derived one, then the overrides.

`TaskResolver.assign` runs once per chat/Responses request, before the route is decided,
and writes the ``task`` column of its row, also when the request is then refused for a
bad name (the row then carries the derived task). `lenient` is for the rows of requests
refused before any service saw them (401, 413, 429, ...): it never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.errors import InvalidRequest
from proxy.tasks.config import TaskOverride
from proxy.tasks.identity import (
    UNKNOWN,
    client_task,
    derive_task,
    lenient_client_task,
    system_prompt,
)
from proxy.tasks.masking import mask

# Masked system prompts kept per resolver: most apps send one fixed system prompt per kind
# of call, and masking a 1 KB prompt costs ~0.5 ms on this machine, so a repeat is a dict
# lookup. Cleared when full (a template with a varying value in it never repeats).
MASK_CACHE = 1024
TASK_EXCLUDED = "task_excluded"
"""The route reason of a request of an excluded task (always the teacher)."""
TASK_TOO_LITTLE_TRAFFIC = "task_too_little_traffic"
"""The route reason of a request of a task with fewer teacher answers than a run needs
(`train_min_rows`) and no calibrated student (``loop_scope = task``, beside other tasks):
the teacher answers, the student's answer is logged beside it."""


@dataclass(frozen=True)
class Task:
    name: str
    named_by: str
    """``client`` (header or metadata), ``derived``, or ``unknown`` (no body was read)."""
    original: str
    """The name before the overrides: the client's or the derived one."""
    override: TaskOverride | None = None

    @property
    def excluded(self) -> bool:
        return self.override is not None and self.override.exclude


class TaskResolver:
    """Applies the ``[tasks.NAME]`` tables (already checked by `check_overrides`)."""

    def __init__(self, overrides: Mapping[str, TaskOverride] | None = None) -> None:
        self.overrides: dict[str, TaskOverride] = dict(overrides or {})
        self._by_name = {n: name for name, t in self.overrides.items() for n in t.names}
        # Longest first: the most specific prefix wins where several match.
        self._prefixes = sorted(
            ((p, name) for name, t in self.overrides.items() for p in t.prefixes),
            key=lambda item: -len(item[0]),
        )
        self._masked: dict[str, str] = {}

    def _mask(self, prompt: str) -> str:
        masked = self._masked.get(prompt)
        if masked is None:
            if len(self._masked) >= MASK_CACHE:
                self._masked.clear()
            masked = self._masked[prompt] = mask(prompt)
        return masked

    def _final(self, original: str, named_by: str) -> Task:
        name = self._by_name.get(original, original)
        return Task(name, named_by, original, self.overrides.get(name))

    def _derived(self, body: dict[str, Any]) -> Task:
        """The derived task; a ``prefix:`` entry can take it where no name does."""
        prompt = system_prompt(body)
        original = derive_task(body, self._mask, prompt)
        name = self._by_name.get(original)
        if name is None:
            name = next((n for p, n in self._prefixes if prompt.startswith(p)), original)
        return Task(name, "derived", original, self.overrides.get(name))

    def resolve(self, header: str | None, body: dict[str, Any]) -> Task:
        """The request's task; a bad client name raises `InvalidRequest` (a 400)."""
        named = client_task(header, body)
        return self._derived(body) if named is None else self._final(named, "client")

    def lenient(self, header: str | None, body: dict[str, Any] | None) -> Task:
        """The task as far as it can be told, never raising (rows of refused requests)."""
        named = lenient_client_task(header, body)
        if named is not None:
            return self._final(named, "client")
        return self._final(UNKNOWN, "unknown") if body is None else self._derived(body)

    def assign(self, header: str | None, body: dict[str, Any], record: dict[str, Any]) -> Task:
        """`resolve`, with the row's ``task`` set even when the name is refused (then the
        derived task)."""
        try:
            task = self.resolve(header, body)
        except InvalidRequest:
            record["task"] = self._derived(body).name
            raise
        record["task"] = task.name
        return task
