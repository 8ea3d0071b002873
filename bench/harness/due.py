"""When a segment of traffic ends and a re-distillation round is due.

Overall (one task, the Banking77 benchmark): after `every` teacher answers, the first round
after `first` (the proxy's train_min_rows). Per task (the mixed benchmark, where the proxy
runs one loop per task): as soon as one task has `every` teacher answers since its own last
run, its first after `first`, which is when the proxy's rows trigger starts that task's run
by itself. Counting all tasks together would end segments where no task is due: the harness
would wait for a run the scheduler never starts, then force one on a task without the rows.
Tasks are the proxy's names for them (``x-distill-task`` on each response).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.harness.driver import RequestRecord

StopRule = Callable[[list[RequestRecord]], bool]


def teacher_count(records: Sequence[RequestRecord]) -> int:
    return sum(1 for r in records if r.route == "teacher")


def _by_task(records: Sequence[RequestRecord]) -> Counter[str]:
    return Counter(r.task_seen for r in records if r.route == "teacher" and r.task_seen)


@dataclass(slots=True)
class DueRule:
    every: int
    first: int = 0
    per_task: bool = False
    pending: Counter[str] = field(default_factory=Counter)
    """Per task: teacher answers since its last run (per-task rule)."""
    trained: set[str] = field(default_factory=set)

    def _need(self, task: str) -> int:
        return self.every if task in self.trained else max(self.every, self.first)

    def is_due(self, records: Sequence[RequestRecord], round_no: int) -> bool:
        """Whether the segment so far (`records`) makes a round due."""
        if not self.per_task:
            need = max(self.every, self.first) if round_no == 1 else self.every
            return teacher_count(records) >= need
        return any(self.pending[t] + n >= self._need(t) for t, n in _by_task(records).items())

    def stop(self, round_no: int) -> StopRule:
        return lambda records: self.is_due(records, round_no)

    def add(self, records: Sequence[RequestRecord]) -> None:
        """A finished segment's teacher answers join each task's count."""
        self.pending.update(_by_task(records))

    def ran(self, task: str | None) -> None:
        """A run of `task` was judged: its count starts again."""
        if task:
            self.pending[task] = 0
            self.trained.add(task)
