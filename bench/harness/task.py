"""What a benchmark task is to the harness: data, prompt, replay-teacher answers, scoring.

A task is one module under ``bench/tasks/``; the driver sends its prompt, the replay
teacher asks its `Answerer`, and the report scores records with it. Nothing here knows a
dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bench.harness.examples import Example, Split
from bench.harness.tokens import Tokenizer

Record = dict[str, Any]
Messages = list[dict[str, str]]
LogprobContent = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Scored:
    """One answer judged against its example: the normalised answer (None: unusable),
    whether it counts as right, and per-request numbers the task's `quality` adds up."""

    predicted: str | None
    correct: bool
    metrics: dict[str, float] | None = None


class Answerer(Protocol):
    """A task's part of a replay teacher."""

    def claims(self, messages: Messages) -> bool:
        """Whether a request (its messages, system prompt first) belongs to this task."""
        ...

    def choice(
        self, query: str, sample: int, top_k: int | None, key: str
    ) -> tuple[list[str], LogprobContent | None]:
        """The answer's tokens and, when `top_k` is not None, their logprobs; `sample` > 0
        are extra samples (`n`), `key` seeds everything random about this answer."""
        ...


class Task(Protocol):
    """One kind of call an app makes, with what the benchmark needs to send and judge it."""

    name: str
    model: str  # the model name the app asks for (a driver may send one name for all)
    max_tokens: int
    # The replay teacher's stated accuracy by default (what `quality` calls "accuracy"
    # for this task; a free-form task states none).
    default_accuracy: float | None

    def split(self, seed: int) -> Split:
        """Traffic and validation examples, deterministic for a seed, disjoint."""
        ...

    def messages(self, ex: Example) -> Messages:
        """The chat messages the app sends for one example."""
        ...

    def request_options(self) -> dict[str, Any]:
        """Extra request fields the app always sends (e.g. ``response_format``)."""
        ...

    def score(self, answer: str | None, ex: Example) -> Scored:
        """One answer against its example."""
        ...

    def quality(self, records: Sequence[Record]) -> dict[str, float | None]:
        """The task's metrics over records; ``quality`` is the headline one."""
        ...

    def answerer(self, accuracy: float | None, seed: int, tokenizer: Tokenizer) -> Answerer:
        """The replay teacher's answers at `accuracy` (None: the task's default)."""
        ...


def system_text(messages: Messages) -> str:
    """The system message's text ("" without one)."""
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "system":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


def share(hits: float, n: int) -> float | None:
    """hits / n, None for no records."""
    return hits / n if n else None
