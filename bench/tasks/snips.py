"""SNIPS slot extraction to JSON: a voice-assistant request in, ``{"intent", "slots"}`` out,
under a JSON-schema `response_format` (the structured-extraction call of an app).

Data: ``bench/tasks/datasets/snips/`` (CC0, see its README), a shipped subset of the
training files; the official validation files are held back on purpose. Scoring: slot F1
(micro, over (slot, value) pairs, values compared without case and outer spaces), intent
accuracy, exact match, and schema validity (`jsonschema`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from bench.harness.examples import DEFAULT_VALIDATION_FRACTION, Example, Split, stratified_split
from bench.harness.hashing import unit_hash
from bench.harness.logprobs import text_logprobs
from bench.harness.task import LogprobContent, Messages, Record, Scored, share, system_text
from bench.harness.tokens import Tokenizer

NAME = "snips"
MODEL = "assistant-extract"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "datasets" / "snips"
DEFAULT_ACCURACY = 0.85  # exact match of the whole JSON; slot F1 is higher
FILLERS = ('"', " ", ",", "}", "{", ":", "the", "a", "\n", "_")
PROMPT_HEAD = (
    "You turn a voice assistant's requests into JSON. Answer with one JSON object and "
    'nothing else: {"intent": ..., "slots": {...}}, where "intent" is one of the intents '
    'below and "slots" maps each slot the request fills to its exact words in the request '
    "(leave out slots it does not fill).\n\nIntents and their slots:\n"
)

Gold = dict[str, Any]


def load_slots(data_dir: Path = DEFAULT_DATA_DIR) -> dict[str, list[str]]:
    """Slot names per intent."""
    slots = json.loads((data_dir / "slots.json").read_text())
    return {str(k): [str(s) for s in v] for k, v in slots.items()}


def answer_json(intent: str, slots: dict[str, str]) -> str:
    """The JSON text of an answer (the form the replay teacher writes)."""
    return json.dumps({"intent": intent, "slots": slots}, ensure_ascii=False)


def load_examples(data_dir: Path = DEFAULT_DATA_DIR) -> list[Example]:
    """Rows of queries.jsonl; the label is the intent, the target the gold JSON."""
    out: list[Example] = []
    seen: set[str] = set()
    with (data_dir / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            text = str(row["text"]).strip()
            if text and text not in seen:
                seen.add(text)
                slots = {str(k): str(v) for k, v in row["slots"]}
                out.append(
                    Example(text, str(row["intent"]), target=answer_json(row["intent"], slots))
                )
    return out


def schema(slots: dict[str, list[str]]) -> dict[str, Any]:
    """The JSON schema every answer must validate against."""
    names = sorted({s for group in slots.values() for s in group})
    return {
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": sorted(slots)},
            "slots": {
                "type": "object",
                "properties": {name: {"type": "string"} for name in names},
                "additionalProperties": False,
            },
        },
        "required": ["intent", "slots"],
        "additionalProperties": False,
    }


@cache
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    body = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(body)
    return cls(body)


def parse(text: str | None, body: dict[str, Any]) -> Gold | None:
    """The answer as a dict when it is JSON valid against `body`, else None."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not _validator(json.dumps(body, sort_keys=True)).is_valid(value):
        return None
    return value if isinstance(value, dict) else None


def _pairs(answer: Gold) -> set[tuple[str, str]]:
    return {(k, str(v).strip().lower()) for k, v in (answer.get("slots") or {}).items()}


def slot_counts(predicted: Gold | None, gold: Gold) -> tuple[int, int, int]:
    """True positives, false positives and false negatives over (slot, value) pairs; an
    invalid answer predicts nothing (all its gold slots are missed)."""
    want = _pairs(gold)
    got = _pairs(predicted) if predicted is not None else set()
    return len(got & want), len(got - want), len(want - got)


def slot_f1(tp: float, fp: float, fn: float) -> float | None:
    """Micro F1; None when there was nothing to find and nothing was found."""
    return 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else None


class SnipsAnswerer:
    """The replay teacher's extractions: the gold JSON at the stated exact-match accuracy,
    otherwise one plausible slip (a slot missed, a value cut short, a slot misnamed)."""

    def __init__(
        self, gold: dict[str, Gold], slots: dict[str, list[str]], accuracy: float,
        seed: int, tokenizer: Tokenizer,
    ) -> None:  # fmt: skip
        self.gold, self.slots, self.accuracy, self.seed = gold, slots, accuracy, seed
        self.tokenizer = tokenizer

    def claims(self, messages: Messages) -> bool:
        return system_text(messages).startswith(PROMPT_HEAD)

    def decide(self, query: str, sample: int = 0) -> tuple[Gold, bool]:
        """The answer for `query` and whether it is the gold one."""
        gold = self.gold.get(query.strip())
        if gold is None:
            return {"intent": sorted(self.slots)[0], "slots": {}}, False
        if unit_hash(self.seed, "correct", query, sample) < self.accuracy:
            return gold, True
        return self._slip(gold, query, sample), False

    def _slip(self, gold: Gold, query: str, sample: int) -> Gold:
        slots: dict[str, str] = dict(gold["slots"])
        u = unit_hash(self.seed, "slip", query, sample)
        names = list(slots)
        if not names:  # nothing to get wrong inside: the intent then
            others = [i for i in sorted(self.slots) if i != gold["intent"]]
            return {"intent": others[int(u * len(others))], "slots": {}}
        name = names[int(u * len(names)) % len(names)]
        words = slots[name].split()
        spare = [s for s in self.slots[gold["intent"]] if s not in slots]
        if u < 0.4 or (len(words) < 2 and not spare):
            del slots[name]  # a slot missed
        elif len(words) >= 2 and (u < 0.7 or not spare):
            slots[name] = " ".join(words[:-1])  # a value cut short
        else:
            slots[spare[int(u * 997) % len(spare)]] = slots.pop(name)  # a slot misnamed
        return {"intent": gold["intent"], "slots": slots}

    def choice(
        self, query: str, sample: int, top_k: int | None, key: str
    ) -> tuple[list[str], LogprobContent | None]:
        answer, _ = self.decide(query, sample)
        tokens = self.tokenizer.split(answer_json(answer["intent"], answer["slots"]))
        logprobs = None if top_k is None else text_logprobs(tokens, top_k, key, list(FILLERS))
        return tokens, logprobs


@dataclass(slots=True)
class SnipsTask:
    """Slot extraction to JSON under a JSON-schema `response_format`."""

    slots: dict[str, list[str]]
    load: Callable[[], list[Example]]
    name: str = NAME
    model: str = MODEL
    max_tokens: int = 96
    default_accuracy: float | None = DEFAULT_ACCURACY
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    _examples: list[Example] | None = field(default=None, repr=False)

    def examples(self) -> list[Example]:
        if self._examples is None:
            self._examples = self.load()
        return self._examples

    def schema(self) -> dict[str, Any]:
        return schema(self.slots)

    def system_prompt(self) -> str:
        lines = [f"- {intent}: {', '.join(names)}" for intent, names in sorted(self.slots.items())]
        return PROMPT_HEAD + "\n".join(lines)

    def split(self, seed: int) -> Split:
        return stratified_split(self.examples(), self.validation_fraction, seed)

    def messages(self, ex: Example) -> Messages:
        return [
            {"role": "system", "content": self.system_prompt()},
            {"role": "user", "content": ex.text},
        ]

    def request_options(self) -> dict[str, Any]:
        spec = {"name": "snips_extraction", "schema": self.schema(), "strict": False}
        return {"response_format": {"type": "json_schema", "json_schema": spec}}

    def score(self, answer: str | None, ex: Example) -> Scored:
        gold: Gold = json.loads(ex.answer)
        got = parse(answer, self.schema())
        tp, fp, fn = slot_counts(got, gold)
        metrics = {
            "valid": float(got is not None),
            "tp": float(tp), "fp": float(fp), "fn": float(fn),
            "intent_correct": float(got is not None and got.get("intent") == gold["intent"]),
        }  # fmt: skip
        exact = got is not None and got["intent"] == gold["intent"] and fp == fn == 0
        predicted = answer_json(got["intent"], got["slots"]) if got is not None else None
        return Scored(predicted, exact, metrics)

    def quality(self, records: Sequence[Record]) -> dict[str, float | None]:
        metrics = [r.get("metrics") or {} for r in records]
        tp, fp, fn = (sum(m.get(k, 0.0) for m in metrics) for k in ("tp", "fp", "fn"))
        n = len(records)
        return {
            "quality": slot_f1(tp, fp, fn),
            "slot_f1": slot_f1(tp, fp, fn),
            "exact_match": share(sum(1 for r in records if r.get("correct")), n),
            "intent_accuracy": share(sum(m.get("intent_correct", 0.0) for m in metrics), n),
            "schema_valid": share(sum(m.get("valid", 0.0) for m in metrics), n),
        }

    def answerer(self, accuracy: float | None, seed: int, tokenizer: Tokenizer) -> SnipsAnswerer:
        gold = {ex.text: json.loads(ex.answer) for ex in self.examples()}
        rate = accuracy if accuracy is not None else DEFAULT_ACCURACY
        return SnipsAnswerer(gold, self.slots, rate, seed, tokenizer)


def task(data_dir: Path = DEFAULT_DATA_DIR) -> SnipsTask:
    return SnipsTask(slots=load_slots(data_dir), load=lambda: load_examples(data_dir))
