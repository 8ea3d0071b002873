"""Banking77 data for the Banking77 benchmark and the tests that need realistic prompts.

The task itself (data, prompt, replay teacher, scoring) is `bench.tasks.banking77`; the
split and the traffic order are the harness's (`bench.harness.examples`). This module
keeps the names the rest of the repository imports.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.harness import examples as _examples
from bench.harness.examples import DEFAULT_VALIDATION_FRACTION, Example, Split
from bench.tasks.banking77 import (
    DEFAULT_DATA_DIR,
    DEFAULT_SEED,
    SYSTEM_PROMPT_HEAD,
    build_messages,
    load_categories,
    load_examples,
    load_split,
    normalise_answer,
    system_prompt,
)

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_SEED",
    "DEFAULT_VALIDATION_FRACTION",
    "SYSTEM_PROMPT_HEAD",
    "Example",
    "Split",
    "build_messages",
    "load_categories",
    "load_examples",
    "load_split",
    "normalise_answer",
    "stratified_split",
    "system_prompt",
    "traffic_order",
]


def stratified_split(
    examples: Iterable[Example],
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = DEFAULT_SEED,
) -> Split:
    """The harness's stratified split with Banking77's default seed."""
    return _examples.stratified_split(examples, validation_fraction, seed)


def traffic_order(train: tuple[Example, ...], seed: int = DEFAULT_SEED) -> list[Example]:
    """The harness's traffic order with Banking77's default seed."""
    return _examples.traffic_order(train, seed)
