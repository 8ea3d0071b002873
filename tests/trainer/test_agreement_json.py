"""Field-by-field agreement for JSON answers (`trainer.agreement`, metric ``json_fields``):
nested objects, arrays of objects, missing and extra fields, wrong types, an unparsable
prediction; a reference that is not a JSON object keeps the old metrics; and the callers
that read the metric (the evaluation summary, calibration's agrees)."""

from __future__ import annotations

import json

import pytest

from proxy.loop.calibration import agrees
from trainer.agreement import agreement, json_fields, json_leaves, json_reference, metric_for
from trainer.evaluate import ItemScore, summarize

SLOTS = '{"intent": "BookRestaurant", "slots": {"city": "Paris", "party_size": 4}}'


def test_leaves_are_paths_to_scalars() -> None:
    value = json.loads('{"slots": {"city": "Paris"}, "items": [{"name": "x"}, {"name": "y"}]}')
    assert json_leaves(value) == {"slots.city": "Paris", "items[0].name": "x", "items[1].name": "y"}
    # Empty containers are leaves; odd keys are quoted so that no two paths collide.
    assert json_leaves({"items": [], "meta": {}}) == {"items": [], "meta": {}}
    assert json_leaves({"a.b": 1, "a": {"b": 2}}) == {'["a.b"]': 1, "a.b": 2}
    assert json_leaves("Paris") == {"": "Paris"}


def test_identical_and_reformatted_answers_agree_fully() -> None:
    assert agreement(SLOTS, SLOTS) == (1.0, "json_fields")
    reordered = '{ "slots": {"party_size": 4.0, "city": "paris."}, "intent": "BOOKRESTAURANT" }'
    assert agreement(reordered, SLOTS) == (1.0, "json_fields")  # order, case, 4 == 4.0


def test_nested_objects_score_matched_leaves_over_the_union() -> None:
    wrong_city = '{"intent": "BookRestaurant", "slots": {"city": "Lyon", "party_size": 4}}'
    assert agreement(wrong_city, SLOTS) == (pytest.approx(2 / 3), "json_fields")


def test_missing_and_extra_fields_count_in_the_union() -> None:
    missing = '{"intent": "BookRestaurant", "slots": {"city": "Paris"}}'
    assert json_fields(missing, SLOTS) == pytest.approx(2 / 3)
    extra = '{"intent": "BookRestaurant", "slots": {"city": "Paris", "party_size": 4, "time": "8"}}'
    assert json_fields(extra, SLOTS) == pytest.approx(3 / 4)
    # An empty array in the reference is one leaf; items where it has none do not match it.
    assert json_fields('{"items": [{"name": "x"}]}', '{"items": []}') == 0.0
    assert json_fields('{"items": []}', '{"items": []}') == 1.0
    assert json_fields("{}", "{}") == 1.0 and json_fields('{"a": 1}', "{}") == 0.0


def test_arrays_of_objects_compare_by_position() -> None:
    reference = '[{"name": "tea", "qty": 2}, {"name": "cake", "qty": 1}]'
    assert agreement(reference, reference) == (1.0, "json_fields")
    swapped = '[{"name": "cake", "qty": 1}, {"name": "tea", "qty": 2}]'
    assert json_fields(swapped, reference) == 0.0
    shorter = '[{"name": "tea", "qty": 2}]'
    assert json_fields(shorter, reference) == pytest.approx(2 / 4)


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        ('"4"', "4"),  # a string is not the number
        ("1", "true"),  # nor is 1 true (Python's True == 1)
        ("0", "false"),
        ('"null"', "null"),
        ("false", "null"),
        ("[]", "{}"),
    ],
)
def test_wrong_types_do_not_match(predicted: str, expected: str) -> None:
    assert json_fields(f'{{"v": {predicted}}}', f'{{"v": {expected}}}') == 0.0
    assert json_fields(f'{{"v": {expected}}}', f'{{"v": {expected}}}') == 1.0


@pytest.mark.parametrize(
    "prediction",
    [
        "BookRestaurant in Paris for 4",
        '```json\n{"intent": "BookRestaurant"}\n```',
        '{"intent": "BookRestaurant", "slots": {"city": "Paris"',  # cut short
        '{"intent": NaN}',  # Python's json reads it; JSON has no NaN
        "",
    ],
)
def test_a_prediction_that_is_not_json_scores_zero(prediction: str) -> None:
    assert agreement(prediction, SLOTS) == (0.0, "json_fields")


def test_deep_nesting_neither_crashes_nor_counts_as_json() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert json_reference(deep) is None  # beyond the parser's recursion: not JSON
    assert agreement(deep, SLOTS) == (0.0, "json_fields")


@pytest.mark.parametrize(
    ("reference", "metric"),
    [
        ("card_arrival", "exact_match"),
        ('["a", "b"]', "exact_match"),  # an array of scalars is no record
        ("42", "exact_match"),
        ('"Paris"', "exact_match"),
        ("{not json at all}", "exact_match"),
        ("The capital of France is Paris, a city on the Seine.", "token_f1"),
        ('  {"a": 1}\n', "json_fields"),
        ("[]", "json_fields"),  # no records found is still a list of records
    ],
)
def test_only_objects_and_arrays_of_objects_are_scored_by_field(
    reference: str, metric: str
) -> None:
    assert metric_for(reference) == metric
    assert agreement(reference, reference) == (1.0, metric)


def test_the_evaluation_summary_names_every_metric_it_used() -> None:
    items = [
        ItemScore("a", SLOTS, SLOTS, 1.0, "json_fields", {}),
        ItemScore("b", "x", "x", 1.0, "exact_match", {}),
    ]
    name = summarize(items)["metric"]
    assert "json_fields" in name and "exact_match" in name
    assert summarize(items[:1])["metric"] == "json_fields"


def test_calibration_counts_a_json_pair_as_agreeing_from_four_fifths_of_its_fields() -> None:
    reference = '{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}'
    assert agrees('{"a": 1, "b": 2, "c": 3, "d": 4, "e": 0}', reference)  # 4/5 = 0.8
    assert not agrees('{"a": 1, "b": 2, "c": 0}', '{"a": 1, "b": 2, "c": 3}')  # 2/3
