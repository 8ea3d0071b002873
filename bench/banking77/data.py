"""Banking77 data: loading, the fixed-seed stratified train/validation split, and the app prompt.

The dataset ships with the repository, in ``bench/banking77/dataset/`` (CC BY 4.0, see
its README for the attribution). Nothing here reads outside the repository. The
validation split is carved out of the training file (the official test split is held
back on purpose) and is never sent as traffic: it only measures the student alone.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "dataset"
DEFAULT_SEED = 77
DEFAULT_VALIDATION_FRACTION = 0.1

SYSTEM_PROMPT_HEAD = (
    "You are the intent classifier of an online bank's customer-support assistant. "
    "Read the customer's message and decide which one of the intents below it expresses. "
    "Answer with exactly one intent label, written exactly as listed, and nothing else: "
    "no explanation, no quotes, no punctuation.\n\nIntent labels:\n"
)


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled customer query."""

    text: str
    label: str


@dataclass(frozen=True, slots=True)
class Split:
    """Traffic-side training part and the held-out validation part."""

    train: tuple[Example, ...]
    validation: tuple[Example, ...]


def load_categories(data_dir: Path = DEFAULT_DATA_DIR) -> list[str]:
    """The 77 intent labels in the dataset's own order."""
    labels = json.loads((data_dir / "categories.json").read_text())
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{data_dir / 'categories.json'} is not a list of labels")
    return labels


def load_examples(data_dir: Path = DEFAULT_DATA_DIR) -> list[Example]:
    """Rows of train.csv (columns ``text,category``) in file order, one per distinct text.

    A few queries differ only in surrounding whitespace; keeping one copy stops a
    validation query from also being sent as traffic.
    """
    seen: set[str] = set()
    examples: list[Example] = []
    with (data_dir / "train.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            text = row["text"].strip()
            if text and text not in seen:
                seen.add(text)
                examples.append(Example(text=text, label=row["category"]))
    return examples


def stratified_split(
    examples: list[Example],
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = DEFAULT_SEED,
) -> Split:
    """Per label, a seeded shuffle puts round(n * fraction) rows (at least one) in validation.

    Deterministic for a given input order and seed; the two parts are disjoint and
    together cover every example exactly once.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError("validation_fraction must be in (0, 1)")
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.label].append(ex)
    rng = random.Random(seed)
    train: list[Example] = []
    validation: list[Example] = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        n_val = max(1, round(len(group) * validation_fraction))
        validation.extend(group[:n_val])
        train.extend(group[n_val:])
    return Split(train=tuple(train), validation=tuple(validation))


def traffic_order(train: tuple[Example, ...], seed: int = DEFAULT_SEED) -> list[Example]:
    """The training part in the (seeded, shuffled) order the traffic driver sends it."""
    order = list(train)
    random.Random(seed + 1).shuffle(order)
    return order


def load_split(
    data_dir: Path = DEFAULT_DATA_DIR,
    seed: int = DEFAULT_SEED,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
) -> Split:
    """Loads train.csv and splits it (the one call the harness uses)."""
    return stratified_split(load_examples(data_dir), validation_fraction, seed)


def system_prompt(labels: list[str]) -> str:
    """The app's system message: the task, the output rule and all labels, one per line."""
    return SYSTEM_PROMPT_HEAD + "\n".join(labels)


def build_messages(query: str, labels: list[str]) -> list[dict[str, str]]:
    """The chat messages a real support app would send for one customer query."""
    return [
        {"role": "system", "content": system_prompt(labels)},
        {"role": "user", "content": query},
    ]


def normalise_answer(text: str | None, labels: list[str]) -> str | None:
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
