"""Free-form replies, the negative control: "reply to this customer message" in prose.

The queries are Banking77's (already shipped); the replay teacher writes a varied reply
for each (greeting, an acknowledgement that names the topic, a next step, a case number
derived from a hash of the query, a sign-off), so no student can match its text: a proxy
that serves the student here has served something the teacher would not have said.
Scoring: exact agreement with the teacher's reply (`correct`) and token F1 against it.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.harness.confusions import words
from bench.harness.examples import Example, Split, stratified_split
from bench.harness.hashing import pick, unit_hash
from bench.harness.logprobs import text_logprobs
from bench.harness.task import LogprobContent, Messages, Record, Scored, share, system_text
from bench.harness.tokens import Tokenizer
from bench.tasks import banking77

NAME = "freeform"
MODEL = "support-reply"
POOL = 1600  # Banking77 queries taken (seeded), more than a full run sends
POOL_SEED = 2024
# The reference replies are the teacher's at its default seed; a teacher started with
# another seed writes other text, and every answer then scores as a mismatch.
TEACHER_SEED = 0
FILLERS = (" ", ",", ".", "\n", "the", "you", "we", "your", "to", "I")
SYSTEM_PROMPT = (
    "You are the customer-support assistant of an online bank. Write a short, friendly "
    "reply to the customer's message below: acknowledge what they ask, say what happens "
    "next, and sign off. Plain text, at most four sentences."
)

GREETINGS = (
    "Hi there,",
    "Hello,",
    "Hi, and thanks for getting in touch.",
    "Thanks for your message.",
    "Good to hear from you.",
    "Hello and thank you.",
)
ACKS = (
    "I understand you are asking about {topic}.",
    "You wrote to us about {topic}.",
    "I can see this is about {topic}.",
    "Thanks for the details on {topic}.",
    "Let me help with {topic}.",
)
NEXT = (
    "A specialist will look into it and reply within {hours} hours.",
    "I have passed this to our team, who will follow up within {hours} hours.",
    "You can also check the status in the app under Help, and we will write within {hours} hours.",
    "We are checking your account now and will update you within {hours} hours.",
)
CASES = (
    "Your case number is {case}.",
    "Please quote reference {case} if you write again.",
    "Reference: {case}.",
)
SIGNOFFS = (
    "Best regards, {agent}",
    "Kind regards, {agent} from Support",
    "Thanks, {agent}",
    "Speak soon, {agent}",
)
AGENTS = ("Maya", "Tom", "Priya", "Lukas", "Ana", "Sam", "Jonas", "Leila")  # fmt: skip
_TOKEN = re.compile(r"[a-z0-9]+")


def reply(query: str, seed: int = TEACHER_SEED, sample: int = 0) -> str:
    """The teacher's reply: every part chosen by a hash of (seed, query, sample)."""
    key = (seed, query.strip(), sample)
    topic = " ".join(words(query)[:3]) or "your request"
    parts = [
        pick(GREETINGS, *key, "greet"),
        pick(ACKS, *key, "ack").format(topic=topic),
        pick(NEXT, *key, "next").format(hours=int(12 + 60 * unit_hash(*key, "hours"))),
        pick(CASES, *key, "case").format(case=f"BK-{int(unit_hash(*key, 'n') * 1e6):06d}"),
        pick(SIGNOFFS, *key, "sign").format(agent=pick(AGENTS, *key, "agent")),
    ]
    return " ".join(parts)


def token_f1(answer: str | None, reference: str) -> float:
    """Bag-of-words F1 of an answer against the reference (lower-case word tokens)."""
    got, want = (
        Counter(_TOKEN.findall((answer or "").lower())),
        Counter(_TOKEN.findall(reference.lower())),
    )
    overlap = sum((got & want).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(got.values()), overlap / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def load_examples() -> list[Example]:
    """A seeded sample of Banking77 queries, each with the teacher's reply as its target;
    the intent is kept as the label so the split stays stratified."""
    rows = banking77.load_examples()
    rows = random.Random(POOL_SEED).sample(rows, min(POOL, len(rows)))
    return [Example(ex.text, ex.label, target=reply(ex.text)) for ex in rows]


class ReplyAnswerer:
    """The replay teacher's replies (its `n` samples differ from one another too)."""

    def __init__(self, seed: int, tokenizer: Tokenizer) -> None:
        self.seed, self.tokenizer = seed, tokenizer

    def claims(self, messages: Messages) -> bool:
        return system_text(messages) == SYSTEM_PROMPT

    def choice(
        self, query: str, sample: int, top_k: int | None, key: str
    ) -> tuple[list[str], LogprobContent | None]:
        tokens = self.tokenizer.split(reply(query, self.seed, sample))
        logprobs = None if top_k is None else text_logprobs(tokens, top_k, key, list(FILLERS), 0.3)
        return tokens, logprobs


@dataclass(slots=True)
class FreeformTask:
    """A free-text reply with no closed answer set."""

    load: Callable[[], list[Example]] = load_examples
    name: str = NAME
    model: str = MODEL
    max_tokens: int = 120
    default_accuracy: float | None = None
    validation_fraction: float = 0.1
    _examples: list[Example] | None = field(default=None, repr=False)

    def examples(self) -> list[Example]:
        if self._examples is None:
            self._examples = self.load()
        return self._examples

    def split(self, seed: int) -> Split:
        return stratified_split(self.examples(), self.validation_fraction, seed)

    def messages(self, ex: Example) -> Messages:
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": ex.text}]

    def request_options(self) -> dict[str, Any]:
        return {}

    def score(self, answer: str | None, ex: Example) -> Scored:
        text = answer.strip() if answer else None
        return Scored(text, text == ex.answer, {"token_f1": token_f1(text, ex.answer)})

    def quality(self, records: Sequence[Record]) -> dict[str, float | None]:
        f1 = [float((r.get("metrics") or {}).get("token_f1", 0.0)) for r in records]
        return {
            "quality": share(sum(f1), len(f1)),
            "token_f1": share(sum(f1), len(f1)),
            "agreement": share(sum(1 for r in records if r.get("correct")), len(records)),
        }

    def answerer(self, accuracy: float | None, seed: int, tokenizer: Tokenizer) -> ReplyAnswerer:
        return ReplyAnswerer(seed, tokenizer)


def task() -> FreeformTask:
    return FreeformTask()
