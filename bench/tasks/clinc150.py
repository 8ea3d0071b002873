"""CLINC150 intents with out-of-scope queries: 150 intents of a personal assistant, plus
`oos` for a message that fits none of them (the answer a guessing classifier gets wrong).

Data: ``bench/tasks/datasets/clinc150/`` (CC BY 3.0, see its README), a shipped subset
with every out-of-scope query; the official test split is held back on purpose. Scoring:
accuracy, in-scope accuracy, and out-of-scope recall and precision.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.harness.examples import Example, distinct_texts
from bench.harness.task import Record, share
from bench.tasks.labels import LabelTask

NAME = "clinc150"
MODEL = "assistant-intent"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "datasets" / "clinc150"
DEFAULT_ACCURACY = 0.90
OOS = "oos"
FILLERS = ("_", "\n", " ", "The", "I", "what", "my", "how", "set", "oos")

SYSTEM_PROMPT_HEAD = (
    "You are the intent classifier of a personal assistant app. Read the user's message "
    "and decide which one of the intents below it expresses. If it expresses none of them, "
    f"answer {OOS}. Answer with exactly one label, written exactly as listed, and nothing "
    "else: no explanation, no quotes, no punctuation.\n\nIntent labels:\n"
)


def load_labels(data_dir: Path = DEFAULT_DATA_DIR) -> list[str]:
    """The 150 intents and `oos`, in the dataset's order."""
    labels = json.loads((data_dir / "intents.json").read_text())
    if not isinstance(labels, list) or OOS not in labels:
        raise ValueError(f"{data_dir / 'intents.json'} is not a label list with {OOS!r}")
    return [str(x) for x in labels]


def load_examples(data_dir: Path = DEFAULT_DATA_DIR) -> list[Example]:
    """Rows of queries.csv (columns ``text,intent``), one per distinct text."""
    with (data_dir / "queries.csv").open(newline="", encoding="utf-8") as fh:
        rows = [Example(text=r["text"].strip(), label=r["intent"]) for r in csv.DictReader(fh)]
    return distinct_texts(rows)


@dataclass(slots=True)
class Clinc150Task(LabelTask):
    """A label task whose quality also reports how it handles out-of-scope queries."""

    def quality(self, records: Sequence[Record]) -> dict[str, float | None]:
        oos = [r for r in records if r.get("gold") == OOS]
        in_scope = [r for r in records if r.get("gold") != OOS]
        said_oos = [r for r in records if r.get("predicted") == OOS]
        acc = share(sum(1 for r in records if r.get("correct")), len(records))
        return {
            "quality": acc,
            "accuracy": acc,
            "in_scope_accuracy": share(sum(1 for r in in_scope if r.get("correct")), len(in_scope)),
            "oos_recall": share(sum(1 for r in oos if r.get("predicted") == OOS), len(oos)),
            "oos_precision": share(sum(1 for r in said_oos if r.get("gold") == OOS), len(said_oos)),
            "oos_requests": float(len(oos)),
        }


def task(data_dir: Path = DEFAULT_DATA_DIR) -> Clinc150Task:
    return Clinc150Task(
        name=NAME,
        labels=load_labels(data_dir),
        head=SYSTEM_PROMPT_HEAD,
        load=lambda: load_examples(data_dir),
        model=MODEL,
        default_accuracy=DEFAULT_ACCURACY,
        fillers=FILLERS,
    )
