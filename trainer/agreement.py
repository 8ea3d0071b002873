"""Agreement of a student answer with the teacher's: the quality measure of the whole loop.

Short reference answers (<= `SHORT_ANSWER_WORDS` words: labels, yes/no, entities) are
scored by normalised exact match (0 or 1); longer ones by token-level F1 over normalised
words (SQuAD style), since two correct paragraphs never match exactly. Pure python, no torch:
the proxy's calibration code can use it on logged (student, teacher) pairs.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Literal

SHORT_ANSWER_WORDS = 8
Metric = Literal["exact_match", "token_f1"]

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, punctuation to spaces (so ``card_arrival`` == ``card arrival``),
    articles dropped, whitespace collapsed."""
    text = _PUNCT.sub(" ", text.lower())
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def metric_for(reference: str) -> Metric:
    """The metric an item is scored with, chosen from the teacher's (reference) answer."""
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


def agreement(prediction: str, reference: str) -> tuple[float, Metric]:
    """Score in [0, 1] and the metric used for this item."""
    metric = metric_for(reference)
    score = (
        exact_match(prediction, reference)
        if metric == "exact_match"
        else token_f1(prediction, reference)
    )
    return score, metric
