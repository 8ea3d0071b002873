"""Agreement of a student answer with the teacher's: the quality measure of the whole loop.

The metric is chosen from the teacher's (reference) answer:

- a JSON object, or an array of objects (structured extraction): field by field
  (``json_fields``). Both answers are flattened to their leaf paths (``slots.city``,
  ``items[0].name``); the score is the share of the union of paths on which both hold equal
  values (strings compared normalised, numbers by value, booleans and null exactly). A
  prediction that is not JSON scores 0. Exact match would call one wrong slot out of ten a
  total miss, and token F1 over the JSON text would give credit for the braces and key names.
- short answers (<= `SHORT_ANSWER_WORDS` words: labels, yes/no, entities): normalised exact
  match (0 or 1);
- longer ones: token-level F1 over normalised words (SQuAD style), since two correct
  paragraphs never match exactly.

Pure python, no torch: the proxy's calibration code can use it on logged (student, teacher)
pairs.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from typing import Any, Literal

SHORT_ANSWER_WORDS = 8
AGREE_MIN_SCORE = 0.8
"""A student answer agrees with the teacher's when `agreement` scores it at least this."""
Metric = Literal["exact_match", "token_f1", "json_fields"]

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def normalize_answer(text: str) -> str:
    """Lower case, punctuation to spaces (so ``card_arrival`` == ``card arrival``),
    articles dropped, whitespace collapsed."""
    text = _PUNCT.sub(" ", text.lower())
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def metric_for(reference: str) -> Metric:
    """The metric an item is scored with, chosen from the teacher's (reference) answer."""
    if json_reference(reference) is not None:
        return "json_fields"
    return "exact_match" if len(reference.split()) <= SHORT_ANSWER_WORDS else "token_f1"


def exact_match(prediction: str, reference: str) -> float:
    return 1.0 if normalize_answer(prediction) == normalize_answer(reference) else 0.0


def token_f1(prediction: str, reference: str) -> float:
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(reference).split()
    if not pred or not ref:
        return 1.0 if pred == ref else 0.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")  # Python's json accepts NaN/Infinity; JSON does not


def _loads(text: str) -> Any:
    """The JSON value of `text`; `_NotJson` when it is none (also when nested too deep)."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise _NotJson(str(exc)) from exc


def json_reference(reference: str) -> dict[str, Any] | list[Any] | None:
    """The reference as JSON when field-by-field agreement applies to it (an object, or an
    array of objects), else None."""
    text = reference.strip()
    if not text.startswith(("{", "[")):  # cheap: most references are plain text
        return None
    try:
        value = _loads(text)
    except _NotJson:
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    return None


def _step(prefix: str, key: str | int) -> str:
    # Unambiguous paths: `{"a.b": 1}` is `["a.b"]`, never the `a.b` of `{"a": {"b": 1}}`.
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    if _IDENTIFIER.fullmatch(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{json.dumps(key)}]"


def json_leaves(value: Any) -> dict[str, Any]:
    """Leaf path -> value: ``{"slots": {"city": "Paris"}, "items": [{"name": "x"}]}`` gives
    ``{"slots.city": "Paris", "items[0].name": "x"}``. An empty object or array is a leaf
    itself (so ``{"items": []}`` differs from ``{"items": [{...}]}``); a scalar at the top
    is the leaf ``""``. Iterative: parsed JSON may nest deeper than Python's stack."""
    leaves: dict[str, Any] = {}
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict) and node:
            stack.extend((_step(path, k), v) for k, v in node.items())
        elif isinstance(node, list) and node:
            stack.extend((_step(path, i), v) for i, v in enumerate(node))
        else:
            leaves[path] = node
    return leaves


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)  # True is an int


def _leaf_equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return normalize_answer(a) == normalize_answer(b)
    if _is_number(a) and _is_number(b):
        return bool(a == b)  # by value: 3 == 3.0
    return type(a) is type(b) and a == b  # booleans, null, empty {} / []: exactly


def _fields_score(prediction: str, reference: Any) -> float:
    try:
        predicted = json_leaves(_loads(prediction))
    except _NotJson:
        return 0.0
    expected = json_leaves(reference)
    union = expected.keys() | predicted.keys()
    matched = sum(
        1 for p in expected.keys() & predicted.keys() if _leaf_equal(expected[p], predicted[p])
    )
    return matched / len(union)  # never empty: an empty reference is the leaf "" itself


def json_fields(prediction: str, reference: str) -> float:
    """Matched leaves / union of leaf paths (see the module docstring); 0 when the
    prediction is not JSON. Raises ValueError when the reference is not JSON."""
    return _fields_score(prediction, _loads(reference))


def agreement(prediction: str, reference: str) -> tuple[float, Metric]:
    """Score in [0, 1] and the metric used for this item."""
    structured = json_reference(reference)
    if structured is not None:
        return _fields_score(prediction, structured), "json_fields"
    if len(reference.split()) <= SHORT_ANSWER_WORDS:
        return exact_match(prediction, reference), "exact_match"
    return token_f1(prediction, reference), "token_f1"
