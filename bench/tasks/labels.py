"""What every closed-label-set task shares: the label-list prompt, answer normalisation,
accuracy scoring and the replay teacher's label answers (`ReplayOracle`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.harness.examples import DEFAULT_VALIDATION_FRACTION, Example, Split, stratified_split
from bench.harness.label_oracle import ReplayOracle
from bench.harness.logprobs import GENERIC_FILLERS, filler_pool, label_logprobs
from bench.harness.task import LogprobContent, Messages, Record, Scored, share, system_text
from bench.harness.tokens import Tokenizer


def normalise_label(text: str | None, labels: list[str]) -> str | None:
    """Maps a model answer to a label, or None when it is not exactly one label.

    Tolerates what a human grader would: surrounding whitespace, quotes, a trailing
    period, case, spaces instead of underscores, and text after the first line.
    """
    if not text:
        return None
    known = {label.lower(): label for label in labels}
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    for candidate in (text, first_line):
        key = candidate.strip().strip("`'\"*.").strip().lower().replace(" ", "_")
        if key in known:
            return known[key]
    return None


class LabelAnswerer:
    """The replay teacher's part for one label task: the oracle's label, split by the
    student's tokenizer, with logprobs that put doubt on confusable labels."""

    def __init__(
        self,
        oracle: ReplayOracle,
        tokenizer: Tokenizer,
        head: str,
        fillers: tuple[str, ...] = GENERIC_FILLERS,
    ) -> None:
        self.oracle, self.tokenizer, self.head = oracle, tokenizer, head
        self.fillers = filler_pool(oracle.labels, tokenizer, fillers)

    def claims(self, messages: Messages) -> bool:
        return system_text(messages).startswith(self.head)

    def choice(
        self, query: str, sample: int, top_k: int | None, key: str
    ) -> tuple[list[str], LogprobContent | None]:
        decision = self.oracle.decide(query, sample)
        tokens = self.tokenizer.split(decision.label)
        logprobs = None
        if top_k is not None:
            logprobs = label_logprobs(
                decision.label,
                self.oracle.rivals(decision),
                self.tokenizer,
                top_k,
                key=key,
                fillers=self.fillers,
                torn=decision.gold is not None and not decision.correct,
            )
        return tokens, logprobs


@dataclass(slots=True)
class LabelTask:
    """A classifier call: a system prompt listing the labels, the query as the user message,
    one label back. Banking77 and CLINC150 are instances (CLINC150 adds out-of-scope)."""

    name: str
    labels: list[str]
    head: str
    load: Callable[[], list[Example]]
    model: str = "intent-classifier"
    default_accuracy: float | None = 0.92
    max_tokens: int = 24
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    fillers: tuple[str, ...] = GENERIC_FILLERS
    _examples: list[Example] | None = field(default=None, repr=False)

    def examples(self) -> list[Example]:
        if self._examples is None:
            self._examples = self.load()
        return self._examples

    def system_prompt(self) -> str:
        """The task, the output rule and all labels, one per line."""
        return self.head + "\n".join(self.labels)

    def split(self, seed: int) -> Split:
        return stratified_split(self.examples(), self.validation_fraction, seed)

    def messages(self, ex: Example) -> Messages:
        return [
            {"role": "system", "content": self.system_prompt()},
            {"role": "user", "content": ex.text},
        ]

    def request_options(self) -> dict[str, Any]:
        return {}

    def score(self, answer: str | None, ex: Example) -> Scored:
        predicted = normalise_label(answer, self.labels)
        return Scored(predicted, predicted == ex.label)

    def quality(self, records: Sequence[Record]) -> dict[str, float | None]:
        acc = share(sum(1 for r in records if r.get("correct")), len(records))
        return {"quality": acc, "accuracy": acc}

    def answerer(self, accuracy: float | None, seed: int, tokenizer: Tokenizer) -> LabelAnswerer:
        rate = accuracy if accuracy is not None else self.default_accuracy
        oracle = ReplayOracle(self.examples(), self.labels, rate if rate is not None else 1.0, seed)
        return LabelAnswerer(oracle, tokenizer, self.head, self.fillers)
