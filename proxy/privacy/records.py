"""Applying redaction and secret scrubbing to a request log row (a dict of columns)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TEXT_COLUMNS = ("student_text", "teacher_text", "error")
JSON_COLUMNS = ("request_json", "student_response_json", "teacher_response_json")


def _is_data_url(text: str) -> bool:
    # Inline images/audio: base64 digit runs are not PII, and rewriting them corrupts the copy.
    return text.startswith("data:") and ";base64," in text[:200]


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """A copy of a JSON-like value with `fn` applied to every string (keys untouched)."""
    if isinstance(value, str):
        return value if _is_data_url(value) else fn(value)
    if isinstance(value, dict):
        return {k: map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [map_strings(v, fn) for v in value]
    return value


def rewrite_record(record: dict[str, Any], fn: Callable[[str], str]) -> bool:
    """Applies `fn` to the texts of a row in place; True when the teacher text changed.

    When the teacher's answer changed, its token logprobs are dropped too: the tokens
    spell the original text (the row still trains on the redacted hard label)."""
    before = record.get("teacher_text")
    for column in TEXT_COLUMNS:
        value = record.get(column)
        if isinstance(value, str):
            record[column] = fn(value)
    for column in JSON_COLUMNS:
        if record.get(column) is not None:
            record[column] = map_strings(record[column], fn)
    changed = isinstance(before, str) and record.get("teacher_text") != before
    if changed:
        record["teacher_logprobs_json"] = None
    return changed
