"""The Banking77 split, traffic order, app prompt and answer normalisation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.banking77.data import (
    DEFAULT_DATA_DIR,
    Example,
    build_messages,
    load_categories,
    load_examples,
    load_split,
    normalise_answer,
    stratified_split,
    traffic_order,
)


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return load_examples()


@pytest.fixture(scope="module")
def labels() -> list[str]:
    return load_categories()


REPO = Path(__file__).resolve().parents[2]


def test_dataset_ships_inside_the_repository() -> None:
    # A fresh clone has no sibling folders: the data and its attribution travel with it.
    assert DEFAULT_DATA_DIR.resolve().is_relative_to(REPO)
    for name in ("train.csv", "categories.json", "README.md"):
        assert (DEFAULT_DATA_DIR / name).is_file(), f"{name} missing from {DEFAULT_DATA_DIR}"
    readme = (DEFAULT_DATA_DIR / "README.md").read_text()
    assert "CC BY 4.0" in readme and "arXiv:2003.04807" in readme
    assert not (DEFAULT_DATA_DIR / "test.csv").exists()  # the official test split stays out


def test_dataset_shape(examples: list[Example], labels: list[str]) -> None:
    # 10,003 rows, four of them repeat another query up to surrounding whitespace.
    assert len(examples) == 9_999
    assert len({ex.text for ex in examples}) == len(examples)
    assert len(labels) == 77
    assert {ex.label for ex in examples} == set(labels)


def test_split_is_disjoint_and_complete(examples: list[Example]) -> None:
    split = stratified_split(examples)
    train, val = set(split.train), set(split.validation)
    assert not train & val
    assert not {ex.text for ex in train} & {ex.text for ex in val}
    assert train | val == set(examples)
    assert len(split.train) + len(split.validation) == len(examples)


def test_split_is_stratified(examples: list[Example]) -> None:
    split = stratified_split(examples)
    total = Counter(ex.label for ex in examples)
    held = Counter(ex.label for ex in split.validation)
    assert set(held) == set(total)
    for label, n in total.items():
        assert held[label] == max(1, round(n * 0.1)), label
    assert 950 <= len(split.validation) <= 1050


def test_split_is_deterministic_and_seeded(examples: list[Example]) -> None:
    assert stratified_split(examples) == stratified_split(list(examples))
    assert load_split().validation == stratified_split(examples).validation
    other = stratified_split(examples, seed=1)
    assert set(other.validation) != set(stratified_split(examples).validation)


def test_split_rejects_bad_fraction(examples: list[Example]) -> None:
    with pytest.raises(ValueError):
        stratified_split(examples, validation_fraction=1.0)


def test_traffic_order_is_a_fixed_permutation(examples: list[Example]) -> None:
    split = stratified_split(examples)
    order = traffic_order(split.train)
    assert order == traffic_order(split.train)
    assert sorted(order, key=lambda e: e.text) == sorted(split.train, key=lambda e: e.text)
    assert order != list(split.train)


def test_prompt_lists_every_label_and_asks_for_the_label_only(labels: list[str]) -> None:
    messages = build_messages("My card has not arrived yet.", labels)
    assert [m["role"] for m in messages] == ["system", "user"]
    system = messages[0]["content"]
    listed = system.split("Intent labels:\n", 1)[1].splitlines()
    assert listed == labels
    assert "exactly one intent label" in system
    assert "nothing else" in system
    assert messages[1]["content"] == "My card has not arrived yet."


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("card_arrival", "card_arrival"),
        ("  card_arrival.\n", "card_arrival"),
        ('"Card_Arrival"', "card_arrival"),
        ("card arrival", "card_arrival"),
        ("refund_not_showing_up", "Refund_not_showing_up"),
        ("card_arrival\nBecause the customer waits.", "card_arrival"),
        ("The intent is card_arrival", None),
        ("", None),
        (None, None),
        ("not_a_label", None),
    ],
)
def test_normalise_answer(answer: str | None, expected: str | None, labels: list[str]) -> None:
    assert normalise_answer(answer, labels) == expected
