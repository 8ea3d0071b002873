"""Banking77 intents: 77 labels of an online bank's customer support, one label per query.

The dataset ships with the repository, in ``bench/banking77/dataset/`` (CC BY 4.0, see
its README for the attribution). The validation split is carved out of the training file
(the official test split is held back on purpose) and is never sent as traffic.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bench.harness.examples import (
    DEFAULT_VALIDATION_FRACTION,
    Example,
    Split,
    distinct_texts,
    stratified_split,
)
from bench.tasks.labels import LabelTask, normalise_label

NAME = "banking77"
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / "banking77" / "dataset"
DEFAULT_SEED = 77
DEFAULT_ACCURACY = 0.92
MODEL = "banking77-intent"

SYSTEM_PROMPT_HEAD = (
    "You are the intent classifier of an online bank's customer-support assistant. "
    "Read the customer's message and decide which one of the intents below it expresses. "
    "Answer with exactly one intent label, written exactly as listed, and nothing else: "
    "no explanation, no quotes, no punctuation.\n\nIntent labels:\n"
)


def load_categories(data_dir: Path = DEFAULT_DATA_DIR) -> list[str]:
    """The 77 intent labels in the dataset's own order."""
    labels = json.loads((data_dir / "categories.json").read_text())
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{data_dir / 'categories.json'} is not a list of labels")
    return labels


def load_examples(data_dir: Path = DEFAULT_DATA_DIR) -> list[Example]:
    """Rows of train.csv (columns ``text,category``) in file order, one per distinct text
    (a few queries differ only in surrounding whitespace)."""
    with (data_dir / "train.csv").open(newline="", encoding="utf-8") as fh:
        rows = [Example(text=r["text"].strip(), label=r["category"]) for r in csv.DictReader(fh)]
    return distinct_texts(rows)


def load_split(
    data_dir: Path = DEFAULT_DATA_DIR,
    seed: int = DEFAULT_SEED,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
) -> Split:
    """Loads train.csv and splits it (the one call the benchmark uses)."""
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
    """Maps a model answer to a label, or None when it is not exactly one label."""
    return normalise_label(text, labels)


def task(
    data_dir: Path = DEFAULT_DATA_DIR, labels: list[str] | None = None, name: str = NAME
) -> LabelTask:
    """The Banking77 task (labels read from the dataset unless given)."""
    return LabelTask(
        name=name,
        labels=load_categories(data_dir) if labels is None else labels,
        head=SYSTEM_PROMPT_HEAD,
        load=lambda: load_examples(data_dir),
        model=MODEL,
        default_accuracy=DEFAULT_ACCURACY,
    )
